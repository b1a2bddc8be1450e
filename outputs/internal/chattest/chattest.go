// Package chattest holds the test fixtures the chat outputs share: the eight events
// falcosidekick's goldens were recorded with, what falcosidekick sent for them, and golden
// file comparison. Only tests import it.
package chattest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/event"
)

// Update rewrites golden files instead of comparing: go test ./outputs/slack -update.
var Update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func eventsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "events")
}

// Events returns the golden events by name (file name without .json), decoded as the HTTP
// input does and with the source set as falcosidekick's handler set it.
func Events(t testing.TB) map[string]*event.Event {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(eventsDir(), "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden events in %s: %v", eventsDir(), err)
	}
	out := map[string]*event.Event{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := event.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("decode %s: %v", p, err)
		}
		// What falcosidekick's handler did before its outputs saw the event (saker's
		// enrichment owns this): default source, and "internal" for its test rule.
		if ev.Source == "" {
			ev.Source = "syscalls"
		}
		if ev.Rule == "Test rule" {
			ev.Source = "internal"
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = ev
	}
	return out
}

// Names returns the event names sorted.
func Names(evs map[string]*event.Event) []string {
	names := make([]string, 0, len(evs))
	for n := range evs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Falcosidekick returns the body falcosidekick sent for an event in a variant, decoded,
// from testdata/falcosidekick/<variant>/<event>.json (a copy of the shared goldens).
func Falcosidekick(t testing.TB, variant, name string) map[string]any {
	t.Helper()
	p := filepath.Join("testdata", "falcosidekick", variant, name+".json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	var reqs []struct {
		Body string `json:"body"`
	}
	if err := json.Unmarshal(b, &reqs); err != nil || len(reqs) != 1 {
		t.Fatalf("%s: want one recorded request, got %d (%v)", p, len(reqs), err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(reqs[0].Body), &body); err != nil {
		t.Fatalf("%s: body is not a JSON object: %v", p, err)
	}
	return body
}

// Golden compares got with testdata/<variant>/<name>.json (indented for review), or
// rewrites it with -update. got must be valid JSON.
func Golden(t testing.TB, variant, name string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("payload is not valid JSON: %v\n%s", err, got)
	}
	pretty.WriteByte('\n')
	p := filepath.Join("testdata", variant, name+".json")
	if *Update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden %s (run with -update to create it): %v", p, err)
	}
	if !bytes.Equal(want, pretty.Bytes()) {
		t.Errorf("%s differs from the golden file (run with -update after review):\n--- got\n%s\n--- want\n%s", p, pretty.Bytes(), want)
	}
}

// Decode unmarshals a JSON payload into a generic map.
func Decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("payload is not a JSON object: %v\n%s", err, b)
	}
	return m
}

// Subsequence reports whether every element of sub appears in full, in the same order.
func Subsequence(sub, full []string) bool {
	i := 0
	for _, s := range full {
		if i < len(sub) && sub[i] == s {
			i++
		}
	}
	return i == len(sub)
}
