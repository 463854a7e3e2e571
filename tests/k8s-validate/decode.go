package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Document is one decoded object of a multi-document YAML stream.
type Document struct {
	File   string
	Index  int    // 1-based position in File, counting empty documents too
	Source string // helm's "# Source: chart/templates/x.yaml" comment, if any
	Kind   string
	Name   string
	Object runtime.Object
}

// String names the document for messages: file, position, kind, name and helm template.
func (d Document) String() string {
	description := fmt.Sprintf("%s document %d", d.File, d.Index)
	if d.Kind != "" || d.Name != "" {
		description += fmt.Sprintf(" (%s %q)", d.Kind, d.Name)
	}
	if d.Source != "" {
		description += " from " + d.Source
	}
	return description
}

// newScheme registers the API groups that the deployment assets may use. A kind outside
// them is an error, so a misspelled apiVersion or kind is never passed unchecked.
func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme,
		appsv1.AddToScheme,
		autoscalingv2.AddToScheme,
		networkingv1.AddToScheme,
		policyv1.AddToScheme,
		rbacv1.AddToScheme,
		monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return scheme
}

// typeMeta is read loosely, to name the object and choose its Go type.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

// listKinds hold other objects as raw JSON, which would escape the strict decode.
var listKinds = map[string]bool{"List": true}

// ReadDocuments splits a YAML stream into documents and decodes each one strictly into its
// Kubernetes API type. It returns every object that decoded and one error per document that
// did not; documents holding only comments or whitespace are skipped.
func ReadDocuments(scheme *runtime.Scheme, file string, input io.Reader) ([]Document, []error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(input))
	var documents []Document
	var failures []error
	for index := 1; ; index++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			failures = append(failures, fmt.Errorf("%s document %d: reading YAML failed: %w", file, index, err))
			break
		}
		if isBlank(raw) {
			continue
		}
		document := Document{File: file, Index: index, Source: helmSource(raw)}
		if err := decodeStrict(scheme, raw, &document); err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", document, err))
			continue
		}
		documents = append(documents, document)
	}
	return documents, failures
}

// decodeStrict fills document.Kind, Name and Object from raw YAML. It rejects duplicate
// keys, fields that the API type does not have (matched case-sensitively, as the API
// server does), values of the wrong type, and kinds outside the scheme.
func decodeStrict(scheme *runtime.Scheme, raw []byte, document *Document) error {
	// Read kind and name loosely first, so that even a strict failure names the object.
	var meta typeMeta
	if err := yaml.Unmarshal(raw, &meta); err != nil {
		return fmt.Errorf("not a Kubernetes object: %w", err)
	}
	document.Kind = meta.Kind
	document.Name = meta.Metadata.Name
	jsonBytes, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	if meta.APIVersion == "" || meta.Kind == "" {
		return errors.New("apiVersion or kind is missing")
	}
	if document.Name == "" {
		return errors.New("metadata.name is missing")
	}
	if listKinds[meta.Kind] {
		return fmt.Errorf("kind %s is not accepted because its items would not be checked; write each object as its own document", meta.Kind)
	}

	gvk := schema.FromAPIVersionAndKind(meta.APIVersion, meta.Kind)
	if _, err := scheme.New(gvk); err != nil {
		return fmt.Errorf("unknown kind %q in apiVersion %q: no Go type is registered for it", meta.Kind, meta.APIVersion)
	}
	object, messages := unmarshalAllErrors(scheme, gvk, jsonBytes)
	if len(messages) > 0 {
		return errors.New(strings.Join(messages, "; "))
	}
	document.Object = object
	return nil
}

// maxTypeErrors bounds the retries of unmarshalAllErrors on a badly broken document.
const maxTypeErrors = 20

// unmarshalAllErrors decodes jsonBytes strictly into a new object of kind gvk. The decoder
// stops reporting at the first value of the wrong type and then drops the unknown-field
// errors, so after each type error the offending field is removed and the decode is
// repeated: every wrong type and every unknown field is listed, not only the first.
func unmarshalAllErrors(scheme *runtime.Scheme, gvk schema.GroupVersionKind, jsonBytes []byte) (runtime.Object, []string) {
	var tree any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(jsonBytes, &tree); err != nil {
		return nil, []string{err.Error()}
	}
	var messages []string
	for range maxTypeErrors {
		object, _ := scheme.New(gvk)
		strictErrors, err := kjson.UnmarshalStrict(jsonBytes, object)
		if err == nil {
			for _, strictError := range strictErrors {
				messages = append(messages, strictError.Error())
			}
			return object, messages
		}
		messages = append(messages, err.Error())
		field := typeErrorField(err)
		if field == "" || !removeField(tree, strings.Split(field, ".")) {
			return nil, messages
		}
		if jsonBytes, err = json.Marshal(tree); err != nil {
			return nil, append(messages, err.Error())
		}
	}
	return nil, append(messages, "too many errors")
}

// typeErrorField returns the dotted JSON path of a type error, or "" for other errors. The
// error type is internal to sigs.k8s.io/json, so its Field is read by reflection.
func typeErrorField(err error) string {
	value := reflect.ValueOf(err)
	if value.Kind() != reflect.Pointer || value.Elem().Kind() != reflect.Struct {
		return ""
	}
	field := value.Elem().FieldByName("Field")
	if !field.IsValid() || field.Kind() != reflect.String {
		return ""
	}
	return field.String()
}

// removeField deletes the field at path from a decoded JSON tree. The path has no list
// indices, so the field is removed from every element of a list on the way.
func removeField(node any, path []string) bool {
	switch typed := node.(type) {
	case map[string]any:
		child, found := typed[path[0]]
		if !found {
			return false
		}
		if len(path) == 1 {
			delete(typed, path[0])
			return true
		}
		return removeField(child, path[1:])
	case []any:
		removed := false
		for _, element := range typed {
			removed = removeField(element, path) || removed
		}
		return removed
	}
	return false
}

func isBlank(raw []byte) bool {
	for _, line := range bytes.Split(raw, []byte("\n")) {
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) > 0 && trimmed[0] != '#' && !bytes.Equal(trimmed, []byte("---")) {
			return false
		}
	}
	return true
}

func helmSource(raw []byte) string {
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if after, found := bytes.CutPrefix(bytes.TrimSpace(line), []byte("# Source: ")); found {
			return string(after)
		}
	}
	return ""
}
