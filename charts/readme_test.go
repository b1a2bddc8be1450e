package charts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/saker-dev/saker/internal/goldens"
	"go.yaml.in/yaml/v3"
)

const (
	tableStart = "<!-- values:start (generated from values.yaml by `go test ./charts -run TestReadme -update`) -->"
	tableEnd   = "<!-- values:end -->"
)

// TestReadme holds the chart README's table of values to values.yaml: every value is listed
// with its type, default and the "# --" comment above it (helm-docs' convention), and every
// value has such a comment.
func TestReadme(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	var rows []valueRow
	collectValues(doc.Content[0], "", &rows)
	var table strings.Builder
	table.WriteString("| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n")
	for _, r := range rows {
		if r.desc == "" {
			t.Errorf("values.yaml: %s has no \"# --\" description", r.key)
		}
		fmt.Fprintf(&table, "| %s | %s | `%s` | %s |\n", r.key, r.typ, strings.ReplaceAll(r.def, "|", `\|`), strings.ReplaceAll(r.desc, "|", `\|`))
	}
	path := filepath.Join(chartDir, "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i, j := bytes.Index(readme, []byte(tableStart)), bytes.Index(readme, []byte(tableEnd))
	if i < 0 || j < i {
		t.Fatalf("%s: no %s ... %s section", path, tableStart, tableEnd)
	}
	want := append(append(append([]byte{}, readme[:i+len(tableStart)]...), "\n"+table.String()...), readme[j:]...)
	goldens.Check(t, path, want)
}

type valueRow struct{ key, typ, def, desc string }

// collectValues walks a mapping: a key with "# --" comments below it is a section (its
// children are listed), anything else is one row.
func collectValues(m *yaml.Node, prefix string, rows *[]valueRow) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := prefix + k.Value
		if v.Kind == yaml.MappingNode && documentedChildren(v) {
			collectValues(v, key+".", rows)
			continue
		}
		*rows = append(*rows, valueRow{key: key, typ: valueType(v), def: valueDefault(v), desc: description(k.HeadComment)})
	}
}

func documentedChildren(m *yaml.Node) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if description(m.Content[i].HeadComment) != "" {
			return true
		}
		if v := m.Content[i+1]; v.Kind == yaml.MappingNode && documentedChildren(v) {
			return true
		}
	}
	return false
}

// description is the "# --" paragraph of a comment (the lines after it continue it).
func description(comment string) string {
	var out []string
	in := false
	for _, l := range strings.Split(comment, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "# --"):
			in = true
			out = append(out[:0], strings.TrimSpace(strings.TrimPrefix(l, "# --")))
		case in && strings.HasPrefix(l, "#"):
			out = append(out, strings.TrimSpace(strings.TrimPrefix(l, "#")))
		default:
			in = false
		}
	}
	return strings.Join(out, " ")
}

func valueType(v *yaml.Node) string {
	switch v.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "object"
	}
	switch v.Tag {
	case "!!int":
		return "int"
	case "!!float":
		return "float"
	case "!!bool":
		return "bool"
	}
	return "string"
}

func valueDefault(v *yaml.Node) string {
	var x any
	if err := v.Decode(&x); err != nil {
		return v.Value
	}
	b, err := json.Marshal(x)
	if err != nil {
		return v.Value
	}
	return string(b)
}
