// Package goldens is what saker's tests share to compare payloads with golden files and with
// falcosidekick's recordings: one golden file check with one -update flag, one loader of the
// Falco events the recordings were made with, and the location of the repository's shared
// test data (testdata/ at the module root; see testdata/NOTICE for where it comes from).
// Only tests import it.
package goldens

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// update rewrites golden files instead of comparing: go test ./outputs/slack -update.
var update = flag.Bool("update", false, "rewrite the golden files instead of comparing with them")

var (
	rootOnce sync.Once
	root     string
)

// Path returns a file or folder of the shared test data: <module root>/testdata/<elem...>.
// The module root is found from the working directory, which go test sets to the package's
// folder, so it holds whatever flags (-trimpath) the test binary was built with.
func Path(elem ...string) string {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			panic(fmt.Sprintf("goldens: working directory: %v", err))
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				root = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				panic("goldens: no go.mod above the working directory; run the tests with go test")
			}
			dir = parent
		}
	})
	return filepath.Join(append([]string{root, "testdata"}, elem...)...)
}

// Glob returns the files matching pattern, failing the test when there are none: a test
// that needs data fails without it rather than passing on nothing.
func Glob(t testing.TB, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no test data matches %s (err: %v)", pattern, err)
	}
	return files
}

// Check compares got with the golden file at path (relative to the test's package folder),
// or writes got there when the tests run with -update. A missing golden file fails the test.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file: %v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (review, then go test -update):\n%s--- got\n%s\n--- want\n%s",
			path, firstDifference(got, want), got, want)
	}
}

// firstDifference names the first line where got and want differ.
func firstDifference(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl || i >= len(g) || i >= len(w) {
			return fmt.Sprintf("first difference at line %d:\n  got:  %q\n  want: %q\n", i+1, gl, wl)
		}
	}
	return ""
}

// IndentJSON returns the JSON value b indented by two spaces with a final newline, the form
// golden files keep JSON in for review; invalid JSON fails the test.
func IndentJSON(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("payload is not valid JSON: %v\n%s", err, b)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// Events decodes the 8 Falco events falcosidekick's recordings were made with
// (testdata/falcosidekick/events), by name (file name without .json), as the HTTP input does.
// It then prepares them as falcosidekick's handler did before its outputs saw them: source
// "syscalls" when missing, "internal" for its "Test rule", tags sorted. uuid gives each
// event's UUID from its name (nil leaves it empty).
func Events(t testing.TB, uuid func(name string) string) map[string]*event.Event {
	t.Helper()
	paths := Glob(t, Path("falcosidekick", "events", "*.json"))
	out := make(map[string]*event.Event, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := event.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("decode %s: %v", p, err)
		}
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		if uuid != nil {
			ev.UUID = uuid(name)
		}
		switch {
		case ev.Rule == "Test rule":
			ev.Source = "internal"
		case ev.Source == "":
			ev.Source = "syscalls"
		}
		sort.Strings(ev.Tags)
		out[name] = ev
	}
	return out
}

// Names returns the names of evs sorted, for tests that go through them in a stable order.
func Names(evs map[string]*event.Event) []string {
	names := make([]string, 0, len(evs))
	for n := range evs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Recording is one message falcosidekick sent, as recorded in testdata/falcosidekick:
// an HTTP request, a NATS message (Subject, Payload) or a mail (Raw).
type Recording struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   string            `json:"query"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	Subject string            `json:"subject"`
	Payload string            `json:"payload"`
	Raw     string            `json:"raw"`
	// Data is what a TCP output (logstash, syslog) wrote.
	Data string `json:"data"`
}

// Recorded returns the single message falcosidekick sent for event with the settings of
// variant (testdata/falcosidekick/<variant>/<event>.json: "slack-fields", "nats", ...).
func Recorded(t testing.TB, variant, event string) Recording {
	t.Helper()
	p := Path("falcosidekick", variant, event+".json")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var recs []Recording
	if err := json.Unmarshal(raw, &recs); err != nil || len(recs) != 1 {
		t.Fatalf("%s: %v (%d messages recorded, want 1)", p, err, len(recs))
	}
	return recs[0]
}

// NormalizeTime rewrites a decoded payload's "time" value to one spelling of the same
// instant. saker writes Falco's nine fractional digits ("…:00.000000000Z") where
// falcosidekick's Go encoding trims them ("…:00Z"); both are the same RFC 3339 time.
func NormalizeTime(m map[string]any) {
	s, ok := m["time"].(string)
	if !ok {
		return
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		m["time"] = t.UTC().Format(time.RFC3339Nano)
	}
}

// SameEventJSON fails unless body is the Falco JSON falcosidekick sent as the body of its
// recorded request for event in variant (the uuid compared as "<VARIES>", the time as one
// spelling of the same instant): for the outputs that send the event as it is.
func SameEventJSON(t testing.TB, variant, event string, body []byte) {
	t.Helper()
	var fsk, ours map[string]any
	if err := json.Unmarshal([]byte(Recorded(t, variant, event).Body), &fsk); err != nil {
		t.Fatalf("%s/%s: falcosidekick's body: %v", variant, event, err)
	}
	if err := json.Unmarshal(body, &ours); err != nil {
		t.Fatalf("%s/%s: body: %v\n%s", variant, event, err, body)
	}
	if _, ok := ours["uuid"]; ok {
		ours["uuid"] = "<VARIES>"
	}
	NormalizeTime(fsk)
	NormalizeTime(ours)
	a, _ := json.Marshal(fsk)
	b, _ := json.Marshal(ours)
	if string(a) != string(b) {
		t.Errorf("%s/%s: body\n%s\nfalcosidekick sends\n%s", variant, event, b, a)
	}
}
