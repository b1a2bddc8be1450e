package rules_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/audit"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/rules"
	"github.com/saker-dev/saker/internal/goldens"
)

// The extras pack on audit logs of a real kube-apiserver (testdata/k8s-audit-extras, made by
// its capture.sh): every trace is replayed with and without the pack, with rule matching
// first and all, and
//   - the alerts are exactly the reviewed golden files (expected/), output text included;
//   - the pack changes the alerts of no event outside the gaps it is meant to close
//     (TestExtrasChangeOnlyTheGaps);
//   - each gap gives the alert the issue asks for (TestExtrasGaps).

var extrasCorpus = goldens.Path("k8s-audit-extras")

// eventAlerts is the alerts of one audit event, and the event (its raw JSON).
type eventAlerts struct {
	raw    []byte
	alerts []*event.Event
}

// replayFile evaluates every line of an audit log and returns, per event, its alerts; the
// events are kept (copied) so the tests can look at what raised what.
func replayFile(t *testing.T, e *rules.Engine, path string) []eventAlerts {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var p audit.Parser
	ev := e.NewEvaluator()
	var out []eventAlerts
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := p.Parse(line, func(a *audit.Event) error {
			ea := eventAlerts{raw: bytes.Clone(a.Raw())}
			ev.Evaluate(a, func(al *event.Event) { ea.alerts = append(ea.alerts, al) })
			out = append(out, ea)
			return nil
		}, nil); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func loadEngine(t *testing.T, extras bool, m rules.Matching) *rules.Engine {
	t.Helper()
	files := []rules.File{rules.DefaultFile()}
	if extras {
		files = append(files, rules.ExtrasFile())
	}
	e, warnings, err := rules.Load(audit.NewSource(), files, rules.Options{Matching: m, Hostname: "HOSTNAME", Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	return e
}

func extrasTraces(t *testing.T) []string {
	return goldens.Glob(t, filepath.Join(extrasCorpus, "traces", "*.jsonl"))
}

var matchings = []rules.Matching{rules.MatchFirst, rules.MatchAll}

func TestExtrasTracesGolden(t *testing.T) {
	for _, trace := range extrasTraces(t) {
		for _, m := range matchings {
			for _, extras := range []bool{false, true} {
				name := strings.TrimSuffix(filepath.Base(trace), ".jsonl") + "." + m.String()
				if extras {
					name += ".extras"
				}
				t.Run(name, func(t *testing.T) {
					var b []byte
					for _, ea := range replayFile(t, loadEngine(t, extras, m), trace) {
						for _, a := range ea.alerts {
							b = append(b, a.JSON()...)
							b = append(b, '\n')
						}
					}
					goldens.Check(t, filepath.Join(extrasCorpus, "expected", name+".jsonl"), b)
				})
			}
		}
	}
}
