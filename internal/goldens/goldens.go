// Package goldens helps tests compare saker's payloads with falcosidekick's recorded ones
// in ../shared/falcosidekick-goldens.
package goldens

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/shared"
)

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

// SharedDir is the read-only test data folder beside the checkout (see package shared).
func SharedDir() string { return shared.Dir() }

// Events decodes the Falco events in dir (one JSON file each, named after the event) as the
// HTTP input does, then prepares them as falcosidekick's handler did before its outputs saw
// them: source "syscalls" when missing, "internal" for its "Test rule", tags sorted. uuid
// names each event's UUID (nil leaves it empty).
func Events(t testing.TB, dir string, uuid func(name string) string) map[string]*event.Event {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no events in %s: %v", dir, err)
	}
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

// EventsDir is falcosidekick-goldens/events in the shared folder.
func EventsDir() string { return filepath.Join(SharedDir(), "falcosidekick-goldens", "events") }

// Request is one HTTP request falcosidekick sent, as recorded in the goldens.
type Request struct {
	Method, Path string
	Headers      map[string]string
	Body         string
}

// OneRequest reads testdata/falcosidekick/<variant>/<event>.json (a copy of the shared
// goldens beside an output's tests) and returns its single recorded request.
func OneRequest(t testing.TB, variant, event string) Request {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "falcosidekick", variant, event+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var reqs []Request
	if err := json.Unmarshal(raw, &reqs); err != nil || len(reqs) != 1 {
		t.Fatalf("%s/%s: %v (%d requests recorded, want 1)", variant, event, err, len(reqs))
	}
	return reqs[0]
}
