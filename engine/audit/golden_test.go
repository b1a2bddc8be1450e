package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/goldens"
)

// corpusDir is Falco's k8s-audit regression data in the repository's testdata (see its
// README.md).
var corpusDir = goldens.Path("k8s-audit")

func traceFiles(t testing.TB) []string {
	t.Helper()
	return goldens.Glob(t, filepath.Join(corpusDir, "traces", "*.json"))
}

// traceLines returns the non-empty lines of a trace file.
func traceLines(t testing.TB, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			lines = append(lines, bytes.Clone(sc.Bytes()))
		}
	}
	return lines
}

// splitRef splits "name[arg]" into its parts.
func splitRef(ref string) (name, arg string, hasArg bool) {
	if i := strings.IndexByte(ref, '['); i >= 0 && strings.HasSuffix(ref, "]") {
		return ref[:i], ref[i+1 : len(ref)-1], true
	}
	return ref, "", false
}

// TestGoldenFields checks every field of every event of every trace against the values
// the k8saudit and json plugins extract (golden-fields/).
func TestGoldenFields(t *testing.T) {
	src := NewSource()
	for _, path := range traceFiles(t) {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(corpusDir, "golden-fields", name))
			if err != nil {
				t.Fatal(err)
			}
			var golden []map[string]json.RawMessage
			if err := json.Unmarshal(raw, &golden); err != nil {
				t.Fatal(err)
			}
			var p Parser
			gi := 0
			for li, line := range traceLines(t, path) {
				perr := p.Parse(line, func(ev *Event) error {
					if gi >= len(golden) {
						t.Fatalf("line %d: more events than golden entries", li)
					}
					checkGolden(t, src, ev, golden[gi], gi)
					gi++
					return nil
				}, func(ie *ItemError) { t.Errorf("line %d: %v", li, ie) })
				if perr != nil {
					if gi < len(golden) {
						if _, ok := golden[gi]["__parse_error"]; ok {
							gi++
							continue
						}
					}
					t.Errorf("line %d: %v", li, perr)
				}
			}
			if gi != len(golden) {
				t.Errorf("parsed %d events, golden has %d", gi, len(golden))
			}
		})
	}
}

func checkGolden(t *testing.T, src *Source, ev *Event, want map[string]json.RawMessage, idx int) {
	t.Helper()
	if _, ok := want["__parse_error"]; ok {
		t.Errorf("event %d: parsed, want a parse error", idx)
		return
	}
	var ts int64
	if err := json.Unmarshal(want["__timestamp_ns"], &ts); err != nil {
		t.Fatal(err)
	}
	if got := src.TimeNanos(ev); got != ts {
		t.Errorf("event %d: time %d, want %d", idx, got, ts)
	}
	refs := make([]string, 0, len(want))
	for k := range want {
		if !strings.HasPrefix(k, "__") {
			refs = append(refs, k)
		}
	}
	slices.Sort(refs)
	for _, ref := range refs {
		name, arg, hasArg := splitRef(ref)
		f, err := src.Field(name, arg, hasArg)
		if err != nil {
			t.Errorf("event %d: %v", idx, err)
			continue
		}
		var wantVals []string
		wantOK := true
		var w any
		if err := json.Unmarshal(want[ref], &w); err != nil {
			t.Fatal(err)
		}
		switch w := w.(type) {
		case nil:
			wantOK = false
		case string:
			wantVals = []string{w}
			if f.List {
				t.Errorf("event %d: %s is a list field, golden has a single value", idx, ref)
			}
		case []any:
			for _, s := range w {
				wantVals = append(wantVals, s.(string))
			}
			wantOK = len(wantVals) > 0 // an empty list is missing
		}
		got, ok := f.Extract(ev, nil)
		if ok != wantOK || (ok && !slices.Equal(got, wantVals)) {
			t.Errorf("event %d: %s = %q (ok=%v), want %q (ok=%v)", idx, ref, got, ok, wantVals, wantOK)
		}
		// Cached second extraction must agree.
		got2, ok2 := f.Extract(ev, make([]string, 0, 4))
		if ok2 != ok || !slices.Equal(got2, got) {
			t.Errorf("event %d: %s second extraction %q differs from first %q", idx, ref, got2, got)
		}
		out := f.OutputValue(ev)
		switch {
		case !wantOK && out != nil:
			t.Errorf("event %d: %s output value %v, want nil", idx, ref, out)
		case wantOK && !f.List && out != wantVals[0]:
			t.Errorf("event %d: %s output value %v, want %q", idx, ref, out, wantVals[0])
		case wantOK && f.List && !slices.Equal(out.([]string), wantVals):
			t.Errorf("event %d: %s output value %v, want %q", idx, ref, out, wantVals)
		}
	}
}

func TestTimeFields(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.UTC
	ev, err := ParseEvent([]byte(`{"kind":"Event","stageTimestamp":"2018-10-25T14:09:12.581541Z","a":{"b":[1, 2 ,{"c" : true}]},"s":"x\u00e9\"y"}`))
	if err != nil {
		t.Fatal(err)
	}
	src := NewSource()
	for _, c := range []struct {
		name, arg string
		want      string
	}{
		{"jevt.rawtime", "", "1540476552581541000"},
		{"json.rawtime", "", "1540476552581541000"},
		{"jevt.time", "", "14:09:12.581541000"},
		{"jevt.time.iso8601", "", "2018-10-25T14:09:12.581541000Z"},
		{"jevt.value", "/a", `{"b":[1,2,{"c":true}]}`},
		{"jevt.value", "/a/b/2/c", `true`},
		{"jevt.value", "a/b/0", `1`},
		{"json.value", "/s", "xé\"y"},
		{"jevt.value", "/kind", "Event"},
	} {
		f, err := src.Field(c.name, c.arg, c.arg != "")
		if err != nil {
			t.Fatal(err)
		}
		got, ok := f.Extract(ev, nil)
		if !ok || len(got) != 1 || got[0] != c.want {
			t.Errorf("%s[%s] = %q (ok=%v), want %q", c.name, c.arg, got, ok, c.want)
		}
	}
	f, _ := src.Field("jevt.obj", "", false)
	got, _ := f.Extract(ev, nil)
	if !strings.HasPrefix(got[0], "{\n  \"kind\": \"Event\",\n") {
		t.Errorf("jevt.obj = %q, want the event indented by two spaces", got)
	}
	for _, c := range []struct{ name, arg string }{{"jevt.value", ""}, {"ka.uri.param", ""}, {"ka.nope", ""}, {"ka.verb", "x"}} {
		if _, err := src.Field(c.name, c.arg, c.arg != "" || c.name == "ka.verb"); err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("Field(%q, %q) error = %v, want one naming the field", c.name, c.arg, err)
		}
	}
}
