package main

import (
	"fmt"
	"os"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// runValuesComments fails for every key of a helm values file, at any depth, that has no
// comment on the lines above it or at the end of its line. Keys inside list items are
// examples of Kubernetes objects and are skipped.
func runValuesComments(arguments []string) bool {
	if len(arguments) != 1 {
		usage()
	}
	content, err := os.ReadFile(arguments[0])
	if err != nil {
		report([]error{err})
		return false
	}
	var document yamlv3.Node
	if err := yamlv3.Unmarshal(content, &document); err != nil {
		report([]error{fmt.Errorf("%s: invalid YAML: %w", arguments[0], err)})
		return false
	}
	var failures []error
	keys := 0
	if len(document.Content) == 1 {
		walkMapping(document.Content[0], "", &keys, func(key *yamlv3.Node, dotted string) {
			failures = append(failures, fmt.Errorf("%s:%d: key %s has no comment", arguments[0], key.Line, dotted))
		})
	}
	report(failures)
	if len(failures) == 0 {
		fmt.Printf("values comments passed: all %d keys of %s are documented\n", keys, arguments[0])
	}
	return len(failures) == 0
}

func walkMapping(mapping *yamlv3.Node, prefix string, keys *int, undocumented func(*yamlv3.Node, string)) {
	if mapping.Kind != yamlv3.MappingNode {
		return
	}
	for index := 0; index+1 < len(mapping.Content); index += 2 {
		key, value := mapping.Content[index], mapping.Content[index+1]
		dotted := strings.TrimPrefix(prefix+"."+key.Value, ".")
		*keys++
		if strings.TrimSpace(key.HeadComment) == "" && strings.TrimSpace(key.LineComment) == "" {
			undocumented(key, dotted)
		}
		walkMapping(value, dotted, keys, undocumented)
	}
}
