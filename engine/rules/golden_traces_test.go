package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// TraceSuite runs the corpus' expected results (counts, full alerts, cases with extra rule
// files) through an Engine built on Src, Run feeding it a trace file's events. It is exported
// for traces_test.go (package rules_test), which runs it with engine/audit's real source; the
// tests here run it with a Source built from the plugin's golden field values, so the rule
// semantics are checked independently of the audit extraction.
//
// With Extras, the embedded extras pack is loaded right after the default rules (as
// rules.extras does): the pack must leave every one of Falco's expected results unchanged.
type TraceSuite struct {
	Src    Source
	Run    func(t *testing.T, e *Engine, trace string) []*event.Event
	Extras bool
}

// defaults is what the suite loads where the corpus says DEFAULT.
func (ts TraceSuite) defaults() []File {
	if ts.Extras {
		return []File{DefaultFile(), ExtrasFile()}
	}
	return []File{DefaultFile()}
}

// corpusFiles is LoadCorpusFiles with DEFAULT expanded to ts.defaults().
func (ts TraceSuite) corpusFiles(t testing.TB, names ...string) []File {
	var files []File
	for _, n := range names {
		if n == "DEFAULT" {
			files = append(files, ts.defaults()...)
			continue
		}
		files = append(files, LoadCorpusFiles(t, n)...)
	}
	return files
}

func goldenSuite(t *testing.T) TraceSuite {
	return TraceSuite{Src: newGoldenSource(t), Run: runTrace}
}

func readTSV(t *testing.T, name string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpus, name))
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if i == 0 || line == "" {
			continue
		}
		rows = append(rows, strings.Split(line, "\t"))
	}
	return rows
}

func LoadCorpusFiles(t testing.TB, names ...string) []File {
	t.Helper()
	var files []File
	for _, n := range names {
		if n == "DEFAULT" {
			files = append(files, DefaultFile())
			continue
		}
		p := filepath.Join(corpus, "test-rules", n)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, File{Name: n, Data: b})
	}
	return files
}

// runTrace returns the alerts of every event in a trace.
func runTrace(t *testing.T, e *Engine, trace string) []*event.Event {
	t.Helper()
	var out []*event.Event
	for _, ev := range goldenEvents(t, trace) {
		if ev == nil {
			continue
		}
		e.Evaluate(ev, func(a *event.Event) { out = append(out, a) })
	}
	return out
}

func countByRule(alerts []*event.Event) map[string]int {
	m := map[string]int{}
	for _, a := range alerts {
		m[a.Rule]++
	}
	return m
}

func TestGoldenExpectedCounts(t *testing.T)      { goldenSuite(t).ExpectedCounts(t) }
func TestGoldenExpectedAlerts(t *testing.T)      { goldenSuite(t).ExpectedAlerts(t) }
func TestGoldenCasesWithExtraRules(t *testing.T) { goldenSuite(t).CasesWithExtraRules(t) }

// The extras pack changes none of Falco's results on Falco's own traces.
func TestGoldenExtrasExpectedCounts(t *testing.T) { withExtras(goldenSuite(t)).ExpectedCounts(t) }
func TestGoldenExtrasExpectedAlerts(t *testing.T) { withExtras(goldenSuite(t)).ExpectedAlerts(t) }
func TestGoldenExtrasCasesWithExtraRules(t *testing.T) {
	withExtras(goldenSuite(t)).CasesWithExtraRules(t)
}

func withExtras(ts TraceSuite) TraceSuite { ts.Extras = true; return ts }

// ExpectedCounts checks expected-counts-{first,all}.tsv.
func (ts TraceSuite) ExpectedCounts(t *testing.T) {
	src := ts.Src
	for _, mode := range []Matching{MatchFirst, MatchAll} {
		e, _, err := Load(src, ts.defaults(), Options{Matching: mode, Hostname: "HOSTNAME", Location: time.UTC})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]map[string]int{}
		for _, r := range readTSV(t, "expected-counts-"+mode.String()+".tsv") {
			if want[r[0]] == nil {
				want[r[0]] = map[string]int{}
			}
			if r[1] != "-" {
				var n int
				fmt.Sscan(r[2], &n)
				want[r[0]][r[1]] = n
			}
		}
		traces := make([]string, 0, len(want))
		for tr := range want {
			traces = append(traces, tr)
		}
		sort.Strings(traces)
		for _, tr := range traces {
			t.Run(mode.String()+"/"+tr, func(t *testing.T) {
				got := countByRule(ts.Run(t, e, tr))
				if !reflect.DeepEqual(got, want[tr]) {
					t.Errorf("got %v, want %v", got, want[tr])
				}
			})
		}
	}
}

func normJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// ExpectedAlerts checks every alert of expected-alerts-{first,all}.jsonl field by field.
func (ts TraceSuite) ExpectedAlerts(t *testing.T) {
	src := ts.Src
	for _, mode := range []Matching{MatchFirst, MatchAll} {
		e, _, err := Load(src, ts.defaults(), Options{Matching: mode, Hostname: "HOSTNAME", Location: time.UTC})
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(corpus, "expected-alerts-"+mode.String()+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		type alert struct {
			Output       string         `json:"output"`
			OutputFields map[string]any `json:"output_fields"`
			Priority     string         `json:"priority"`
			Rule         string         `json:"rule"`
			Source       string         `json:"source"`
			Tags         []string       `json:"tags"`
			Time         time.Time      `json:"time"`
			Hostname     string         `json:"hostname"`
		}
		want := map[string][]alert{}
		var order []string
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			var line struct {
				Trace string          `json:"trace_file"`
				Alert json.RawMessage `json:"alert"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatal(err)
			}
			var a alert
			dec := json.NewDecoder(bytes.NewReader(line.Alert))
			dec.UseNumber()
			if err := dec.Decode(&a); err != nil {
				t.Fatal(err)
			}
			if want[line.Trace] == nil {
				order = append(order, line.Trace)
			}
			want[line.Trace] = append(want[line.Trace], a)
		}
		f.Close()
		for _, tr := range order {
			t.Run(mode.String()+"/"+tr, func(t *testing.T) {
				got := ts.Run(t, e, tr)
				if len(got) != len(want[tr]) {
					t.Fatalf("got %d alerts, want %d", len(got), len(want[tr]))
				}
				for i, w := range want[tr] {
					g := got[i]
					if g.Rule != w.Rule || g.Output != w.Output || g.Priority.String() != w.Priority || g.Source != w.Source ||
						!reflect.DeepEqual(g.Tags, w.Tags) || !g.Time.Equal(w.Time) || g.Hostname != w.Hostname {
						t.Errorf("alert %d:\n got  %s %q %s %s %v %v %s\n want %s %q %s %s %v %v %s", i,
							g.Rule, g.Output, g.Priority, g.Source, g.Tags, g.Time, g.Hostname,
							w.Rule, w.Output, w.Priority, w.Source, w.Tags, w.Time, w.Hostname)
					}
					if gf, wf := normJSON(t, g.OutputFields), normJSON(t, w.OutputFields); !reflect.DeepEqual(gf, wf) {
						t.Errorf("alert %d output_fields:\n got  %v\n want %v", i, gf, wf)
					}
				}
			})
		}
	}
}

// CasesWithExtraRules checks cases-with-extra-rules.tsv.
func (ts TraceSuite) CasesWithExtraRules(t *testing.T) {
	src := ts.Src
	for _, r := range readTSV(t, "cases-with-extra-rules.tsv") {
		trace, name, files, expected := r[0], r[1], strings.Split(r[2], " + "), r[3]
		t.Run(name, func(t *testing.T) {
			e, _, err := Load(src, ts.corpusFiles(t, files...), Options{Hostname: "h"})
			if err != nil {
				t.Fatal(err)
			}
			got := countByRule(ts.Run(t, e, trace))
			want := map[string]int{}
			if !strings.HasPrefix(expected, "NO alerts") {
				i := strings.LastIndex(expected, ": ")
				var n int
				fmt.Sscan(expected[i+2:], &n)
				want[expected[:i]] = n
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("files %v: got %v, want %v", files, got, want)
			}
		})
	}
}
