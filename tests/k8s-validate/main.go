// Command k8s-validate checks the rendered deployment assets of wasmgate (helm template and
// kustomize build output) before anything reaches a cluster.
//
//	k8s-validate validate [FILE...]
//	    Decodes every document strictly into its Kubernetes API type: unknown fields, wrong
//	    types, duplicate keys and unknown kinds fail. "-" or no FILE reads standard input.
//	k8s-validate check -wasmgate BINARY -root DIR [flags] FILE...
//	    Does the same, then checks the references between objects and the gate's Pod, and
//	    runs `wasmgate serve --check-config` with each gate container's arguments.
//	k8s-validate values-comments VALUES.yaml
//	    Fails for every key of a helm values file that has no comment above it.
//
// Exit status: 0 when every check passed, 1 when a check failed, 2 for a usage error.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// keyValueFlags collects repeated KEY=FILE flags.
type keyValueFlags map[string]string

func (values keyValueFlags) String() string { return fmt.Sprint(map[string]string(values)) }

func (values keyValueFlags) Set(text string) error {
	key, value, found := strings.Cut(text, "=")
	if !found || key == "" || value == "" {
		return fmt.Errorf("%q is not KEY=FILE", text)
	}
	values[key] = value
	return nil
}

// listFlags collects repeated flags in order.
type listFlags []string

func (values *listFlags) String() string { return strings.Join(*values, ",") }

func (values *listFlags) Set(text string) error {
	*values = append(*values, text)
	return nil
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var ok bool
	switch os.Args[1] {
	case "validate":
		ok = runValidate(os.Args[2:])
	case "check":
		ok = runCheck(os.Args[2:])
	case "values-comments":
		ok = runValuesComments(os.Args[2:])
	default:
		usage()
	}
	if !ok {
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: k8s-validate validate [FILE...]")
	fmt.Fprintln(os.Stderr, "       k8s-validate check -wasmgate BINARY -root DIR [flags] FILE...")
	fmt.Fprintln(os.Stderr, "       k8s-validate values-comments VALUES.yaml")
	os.Exit(2)
}

func runValidate(files []string) bool {
	documents, failures := readAll(files)
	report(failures)
	if len(failures) == 0 {
		fmt.Printf("strict decoding passed: %s\n", summarize(documents))
	}
	return len(failures) == 0
}

func runCheck(arguments []string) bool {
	flags := flag.NewFlagSet("check", flag.ExitOnError)
	var options CheckOptions
	var existing listFlags
	secretFiles := keyValueFlags{}
	flags.StringVar(&options.Wasmgate, "wasmgate", "", "wasmgate binary run with `serve --check-config` (required)")
	flags.StringVar(&options.Root, "root", "", "empty directory where each gate Pod's mounted files are written (required)")
	flags.StringVar(&options.GateContainer, "gate-container", "wasmgate", "name of the gate's container")
	flags.Var(&existing, "existing", "YAML file of objects that the render refers to but does not contain, such as an existing ConfigMap; repeatable")
	flags.Var(secretFiles, "secret-file", "KEY=FILE: contents for KEY of every Secret volume, because Secrets are not rendered; repeatable")
	flags.BoolVar(&options.RequirePolicyChecksum, "require-policy-checksum", false, "require the checksum/policy Pod annotation")
	flags.BoolVar(&options.IngressNginx, "ingress-nginx", false, "require at least one Ingress, with the ingress-nginx annotations for registry traffic")
	flags.Parse(arguments)
	options.SecretFiles = secretFiles
	if options.Wasmgate == "" || options.Root == "" || flags.NArg() == 0 {
		flags.Usage()
		os.Exit(2)
	}

	rendered, failures := readAll(flags.Args())
	supplied, existingFailures := readAll(existing)
	failures = append(failures, existingFailures...)
	if len(failures) > 0 {
		report(failures)
		return false
	}
	fmt.Printf("strict decoding passed: %s\n", summarize(rendered))

	cluster := NewCluster(rendered, supplied)
	checkFailures := Check(cluster, options)
	report(checkFailures)
	return len(checkFailures) == 0
}

func readAll(files []string) ([]Document, []error) {
	scheme := newScheme()
	if len(files) == 0 {
		files = []string{"-"}
	}
	var documents []Document
	var failures []error
	for _, file := range files {
		var input io.Reader = os.Stdin
		name := "<stdin>"
		if file != "-" {
			opened, err := os.Open(file)
			if err != nil {
				failures = append(failures, err)
				continue
			}
			defer opened.Close()
			input, name = opened, file
		}
		fileDocuments, fileFailures := ReadDocuments(scheme, name, input)
		documents = append(documents, fileDocuments...)
		failures = append(failures, fileFailures...)
	}
	return documents, failures
}

func report(failures []error) {
	for _, failure := range failures {
		fmt.Fprintf(os.Stderr, "FAIL %v\n", failure)
	}
}

func summarize(documents []Document) string {
	counts := map[string]int{}
	var kinds []string
	for _, document := range documents {
		if counts[document.Kind] == 0 {
			kinds = append(kinds, document.Kind)
		}
		counts[document.Kind]++
	}
	parts := make([]string, 0, len(kinds))
	for _, kind := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", counts[kind], kind))
	}
	return fmt.Sprintf("%d objects (%s)", len(documents), strings.Join(parts, ", "))
}
