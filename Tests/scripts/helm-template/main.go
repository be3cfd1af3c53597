// helm-template renders a Helm chart the way `helm template` does, for the packaging tests.
//
// Why this exists: the helm binary cannot be installed on the machines this project is built and tested on
// (only Debian's packages and PyPI are reachable, and neither ships helm). Helm's rendering is Go's
// text/template with the sprig function library plus a few functions of its own; Debian ships Go and sprig
// 3.2.3 (the version helm 3 uses), so this program uses that same engine with the same settings:
//
//   - every file under templates/ is parsed into one template set, named "<chart>/templates/<file>";
//     files whose names start with "_" are partials (defined templates only) and are not rendered, nor is
//     NOTES.txt;
//   - functions: sprig's text functions without env/expandenv (helm removes them), and helm's toYaml,
//     fromYaml, toJson, fromJson, include, tpl, required and lookup (which, as in `helm template`, finds
//     nothing);
//   - missingkey=zero, and "<no value>" in the output replaced by "" (helm does both);
//   - .Values: values.yaml deep-merged with each -f file in order, then each --set path=value;
//     .Chart from Chart.yaml (Name, Version, AppVersion, ...), .Release (Name, Namespace, Service "Helm",
//     IsInstall, Revision 1), .Capabilities.KubeVersion, .Template (Name, BasePath);
//   - output: one "---\n# Source: <chart>/templates/<file>" document per template with content, sorted by
//     file name; a template that renders only whitespace is left out.
//
// It does not implement subcharts, .Files, or helm's install-order sorting by kind; the chart under test
// uses none of them. Build: GO111MODULE=off GOPATH=/usr/share/gocode go build (Debian's golang-go,
// golang-github-masterminds-sprig-dev, golang-k8s-sigs-yaml-dev).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	var valueFiles, sets stringList
	releaseName := flag.String("name", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	flag.Var(&valueFiles, "f", "values file (repeatable)")
	flag.Var(&sets, "set", "path=value (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helm-template [-name N] [-namespace NS] [-f values.yaml]... [-set a.b=c]... CHART_DIR")
		os.Exit(2)
	}
	out, err := render(flag.Arg(0), *releaseName, *namespace, valueFiles, sets)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

func readYAMLMap(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	result := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &result); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if result == nil {
		result = map[string]interface{}{}
	}
	return result, nil
}

// mergeValues deep-merges overlay into base (maps merge, anything else replaces; null deletes, as in helm).
func mergeValues(base, overlay map[string]interface{}) map[string]interface{} {
	for key, value := range overlay {
		if value == nil {
			delete(base, key)
			continue
		}
		if overlayMap, ok := value.(map[string]interface{}); ok {
			if baseMap, ok := base[key].(map[string]interface{}); ok {
				base[key] = mergeValues(baseMap, overlayMap)
				continue
			}
		}
		base[key] = value
	}
	return base
}

// parseSetValue types a --set value the way helm's strvals does for scalars: integers, booleans and null.
func parseSetValue(raw string) interface{} {
	switch raw {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
		return n
	}
	return raw
}

func applySet(values map[string]interface{}, expression string) error {
	eq := strings.Index(expression, "=")
	if eq <= 0 {
		return fmt.Errorf("--set %q: expected path=value", expression)
	}
	path := strings.Split(expression[:eq], ".")
	node := values
	for _, key := range path[:len(path)-1] {
		next, ok := node[key].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			node[key] = next
		}
		node = next
	}
	node[path[len(path)-1]] = parseSetValue(expression[eq+1:])
	return nil
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(s string) map[string]interface{} {
	result := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &result); err != nil {
		result["Error"] = err.Error()
	}
	return result
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(s string) map[string]interface{} {
	result := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &result); err != nil {
		result["Error"] = err.Error()
	}
	return result
}

func render(chartDir, releaseName, namespace string, valueFiles, sets []string) (string, error) {
	chart, err := readYAMLMap(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	chartName, _ := chart["name"].(string)
	if chartName == "" {
		return "", errors.New("Chart.yaml has no name")
	}
	chartObject := map[string]interface{}{}
	for key, value := range chart {
		chartObject[strings.ToUpper(key[:1])+key[1:]] = value
	}
	values, err := readYAMLMap(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return "", err
	}
	for _, file := range valueFiles {
		overlay, err := readYAMLMap(file)
		if err != nil {
			return "", err
		}
		values = mergeValues(values, overlay)
	}
	for _, expression := range sets {
		if err := applySet(values, expression); err != nil {
			return "", err
		}
	}

	root := template.New("chart").Option("missingkey=zero")
	functions := sprig.TxtFuncMap()
	delete(functions, "env")
	delete(functions, "expandenv")
	functions["toYaml"] = toYAML
	functions["fromYaml"] = fromYAML
	functions["toJson"] = toJSON
	functions["fromJson"] = fromJSON
	functions["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	functions["required"] = func(message string, value interface{}) (interface{}, error) {
		if value == nil {
			return nil, errors.New(message)
		}
		if s, ok := value.(string); ok && s == "" {
			return nil, errors.New(message)
		}
		return value, nil
	}
	functions["include"] = func(name string, data interface{}) (string, error) {
		var buffer bytes.Buffer
		if err := root.ExecuteTemplate(&buffer, name, data); err != nil {
			return "", err
		}
		return buffer.String(), nil
	}
	functions["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := root.Clone()
		if err != nil {
			return "", err
		}
		parsed, err := clone.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buffer bytes.Buffer
		if err := parsed.Execute(&buffer, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buffer.String(), "<no value>", ""), nil
	}
	root.Funcs(functions)

	templatesDir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(templatesDir)
	if err != nil {
		return "", err
	}
	var names []string
	for _, entry := range entries {
		if entry.IsDir() {
			continue
		}
		text, err := os.ReadFile(filepath.Join(templatesDir, entry.Name()))
		if err != nil {
			return "", err
		}
		name := chartName + "/templates/" + entry.Name()
		if _, err := root.New(name).Parse(string(text)); err != nil {
			return "", err
		}
		if !strings.HasPrefix(entry.Name(), "_") && entry.Name() != "NOTES.txt" {
			names = append(names, name)
		}
	}
	sort.Strings(names)

	top := map[string]interface{}{
		"Values": values,
		"Chart":  chartObject,
		"Release": map[string]interface{}{
			"Name": releaseName, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v1.30.0", "Major": "1", "Minor": "30"},
		},
	}
	var output strings.Builder
	for _, name := range names {
		top["Template"] = map[string]interface{}{"Name": name, "BasePath": chartName + "/templates"}
		var buffer bytes.Buffer
		if err := root.ExecuteTemplate(&buffer, name, top); err != nil {
			return "", err
		}
		text := strings.ReplaceAll(buffer.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		output.WriteString("---\n# Source: " + name + "\n" + text)
		if !strings.HasSuffix(text, "\n") {
			output.WriteString("\n")
		}
	}
	return output.String(), nil
}
