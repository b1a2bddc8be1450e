package rules_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/saker-dev/saker/engine/audit"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/rules"
	"github.com/saker-dev/saker/internal/goldens"
)

// traceLines returns every audit event line of the corpus traces.
func traceLines(b *testing.B) [][]byte {
	b.Helper()
	files := goldens.Glob(b, filepath.Join(corpus, "traces", "*.json"))
	var lines [][]byte
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
				if _, err := audit.ParseEvent(l); err == nil {
					lines = append(lines, append([]byte(nil), l...))
				}
			}
		}
		fh.Close()
	}
	return lines
}

func loadDefault(b *testing.B, m rules.Matching) *rules.Engine {
	b.Helper()
	e, _, err := rules.Load(audit.NewSource(), []rules.File{rules.DefaultFile()}, rules.Options{Matching: m, Hostname: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkEvaluateDefaultRules measures rule evaluation alone (events parsed beforehand),
// with matching all so every rule's condition runs to its end.
func BenchmarkEvaluateDefaultRules(b *testing.B) {
	lines := traceLines(b)
	evs := make([]*audit.Event, len(lines))
	for i, l := range lines {
		evs[i], _ = audit.ParseEvent(l)
	}
	e := loadDefault(b, rules.MatchAll)
	v := e.NewEvaluator()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		v.Match(evs[i%len(evs)], nil)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEvaluateParseAndAlert is the whole audit path for a line: parse, evaluate the
// default rules (first match), render the alerts.
func BenchmarkEvaluateParseAndAlert(b *testing.B) {
	lines := traceLines(b)
	e := loadDefault(b, rules.MatchFirst)
	v := e.NewEvaluator()
	var p audit.Parser
	alerts := 0
	yield := func(a *audit.Event) error {
		v.Evaluate(a, func(*event.Event) { alerts++ })
		return nil
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		_ = p.Parse(lines[i%len(lines)], yield, nil)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
