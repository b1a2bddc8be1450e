package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/saker-dev/saker/internal/goldens"
)

// mapSource is a fake Source over map events: map[string][]string keyed by the field's token
// text ("ka.user.name", "ka.uri.param[cmd]"). A key that is absent is a missing field. Fields
// whose name is in lists are list fields. Names must start with one of the prefixes.
type mapSource struct {
	lists    map[string]bool
	prefixes []string
	needArg  map[string]bool
}

type mapEvent struct {
	ts     int64
	fields map[string][]string
}

func newMapSource(listFields ...string) *mapSource {
	s := &mapSource{lists: map[string]bool{}, prefixes: []string{"ka.", "jevt.", "t."}, needArg: map[string]bool{"ka.uri.param": true, "jevt.value": true}}
	for _, f := range listFields {
		s.lists[f] = true
	}
	return s
}

func (s *mapSource) Name() string { return "k8s_audit" }

func (s *mapSource) TimeNanos(ev any) int64 { return ev.(*mapEvent).ts }

func (s *mapSource) Field(name, arg string, hasArg bool) (Field, error) {
	known := false
	for _, p := range s.prefixes {
		if strings.HasPrefix(name, p) {
			known = true
		}
	}
	if !known || strings.Contains(name, "unknown") {
		return Field{}, fmt.Errorf("unknown field %q", name)
	}
	if s.needArg[name] && !hasArg {
		return Field{}, fmt.Errorf("field %q requires an argument", name)
	}
	key := name
	if hasArg {
		key += "[" + arg + "]"
	}
	return Field{
		List: s.lists[name],
		Extract: func(ev any, buf []string) ([]string, bool) {
			v, ok := ev.(*mapEvent).fields[key]
			if !ok || len(v) == 0 {
				return buf, false
			}
			return append(buf, v...), true
		},
	}, nil
}

// goldenSource is a fake k8s_audit Source built from the corpus: ka.* values come from
// golden-fields/<trace>.json (the plugin's own extraction), jevt.* from the trace line.
type goldenSource struct{ lists map[string]bool }

type goldenEvent struct {
	ts     int64
	fields map[string]json.RawMessage
	raw    []byte
}

// corpus is Falco's k8s-audit regression data in the repository's testdata (see its
// README.md).
var corpus = goldens.Path("k8s-audit")

func (g *goldenSource) Name() string           { return "k8s_audit" }
func (g *goldenSource) TimeNanos(ev any) int64 { return ev.(*goldenEvent).ts }

func (g *goldenSource) Field(name, arg string, hasArg bool) (Field, error) {
	switch {
	case name == "jevt.value":
		if !hasArg {
			return Field{}, fmt.Errorf("jevt.value needs a JSON pointer argument")
		}
		return Field{Extract: func(ev any, buf []string) ([]string, bool) {
			v, ok := jsonPointer(ev.(*goldenEvent).raw, arg)
			if !ok {
				return buf, false
			}
			return append(buf, v), true
		}}, nil
	case name == "jevt.rawtime":
		return Field{Extract: func(ev any, buf []string) ([]string, bool) {
			return append(buf, strconv.FormatInt(ev.(*goldenEvent).ts, 10)), true
		}}, nil
	case name == "jevt.obj":
		return Field{Extract: func(ev any, buf []string) ([]string, bool) {
			var b bytes.Buffer
			if json.Compact(&b, ev.(*goldenEvent).raw) != nil {
				return buf, false
			}
			return append(buf, b.String()), true
		}}, nil
	case strings.HasPrefix(name, "ka."):
		key := name
		if hasArg {
			key += "[" + arg + "]"
		}
		list := g.lists[name] || strings.HasPrefix(name, "ka.req.pod.initContainers.") || strings.HasPrefix(name, "ka.req.pod.ephemeralContainers.") ||
			name == "ka.req.pod.host_pid" || name == "ka.req.pod.host_ipc"
		return Field{List: list, Extract: func(ev any, buf []string) ([]string, bool) {
			raw, ok := ev.(*goldenEvent).fields[key]
			if !ok {
				return buf, false
			}
			if list {
				var vs []string
				if json.Unmarshal(raw, &vs) != nil || len(vs) == 0 {
					return buf, false
				}
				return append(buf, vs...), true
			}
			var s *string
			if json.Unmarshal(raw, &s) != nil || s == nil {
				return buf, false
			}
			return append(buf, *s), true
		}}, nil
	}
	return Field{}, fmt.Errorf("unknown field %s", name)
}

// jsonPointer resolves an RFC 6901 pointer in raw, rendering strings unquoted and anything
// else as compact JSON in its original order, as the json plugin does.
func jsonPointer(raw []byte, ptr string) (string, bool) {
	cur := json.RawMessage(raw)
	if ptr != "" {
		if ptr[0] != '/' {
			return "", false
		}
		for _, tok := range strings.Split(ptr[1:], "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			t := bytes.TrimSpace(cur)
			if len(t) == 0 {
				return "", false
			}
			switch t[0] {
			case '{':
				var m map[string]json.RawMessage
				if json.Unmarshal(t, &m) != nil {
					return "", false
				}
				v, ok := m[tok]
				if !ok {
					return "", false
				}
				cur = v
			case '[':
				var a []json.RawMessage
				i, err := strconv.Atoi(tok)
				if json.Unmarshal(t, &a) != nil || err != nil || i < 0 || i >= len(a) {
					return "", false
				}
				cur = a[i]
			default:
				return "", false
			}
		}
	}
	t := bytes.TrimSpace(cur)
	if len(t) > 0 && t[0] == '"' {
		var s string
		if json.Unmarshal(t, &s) != nil {
			return "", false
		}
		return s, true
	}
	if string(t) == "null" {
		return "", false
	}
	var b bytes.Buffer
	if json.Compact(&b, t) != nil {
		return "", false
	}
	return b.String(), true
}

func newGoldenSource(t testing.TB) *goldenSource {
	t.Helper()
	g := &goldenSource{lists: map[string]bool{}}
	files := goldens.Glob(t, filepath.Join(corpus, "golden-fields", "*.json"))
	for _, f := range files {
		for _, ev := range readGolden(t, f) {
			for k, v := range ev {
				if len(v) > 0 && v[0] == '[' {
					g.lists[k] = true
				}
			}
		}
	}
	return g
}

func readGolden(t testing.TB, path string) []map[string]json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var evs []map[string]json.RawMessage
	if err := json.Unmarshal(b, &evs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return evs
}

// goldenEvents returns the events of a trace (nil entries for lines that are not audit events).
func goldenEvents(t testing.TB, trace string) []*goldenEvent {
	t.Helper()
	fields := readGolden(t, filepath.Join(corpus, "golden-fields", trace))
	f, err := os.Open(filepath.Join(corpus, "traces", trace))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*goldenEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	i := 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if i >= len(fields) {
			t.Fatalf("%s: more lines than golden events", trace)
		}
		fv := fields[i]
		i++
		if _, bad := fv["__parse_error"]; bad {
			out = append(out, nil)
			continue
		}
		var ts int64
		if err := json.Unmarshal(fv["__timestamp_ns"], &ts); err != nil {
			t.Fatalf("%s: timestamp: %v", trace, err)
		}
		out = append(out, &goldenEvent{ts: ts, fields: fv, raw: append([]byte(nil), line...)})
	}
	return out
}
