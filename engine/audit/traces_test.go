package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/rules"
)

// The end-to-end tests over the Falco regression traces, through the two ways audit events
// enter saker: Replay (saker replay) and the webhook Handler (POST /k8s-audit with EventList
// batches). engine/rules' own trace tests feed audit.Parser directly; these check the
// receiver and replay plumbing gives the same alerts.

// wireAlert is the part of a Falco JSON alert the expected files pin down.
type wireAlert struct {
	Rule         string         `json:"rule"`
	Priority     string         `json:"priority"`
	Output       string         `json:"output"`
	OutputFields map[string]any `json:"output_fields"`
	Source       string         `json:"source"`
	Tags         []string       `json:"tags"`
}

func decodeAlert(t testing.TB, b []byte) wireAlert {
	t.Helper()
	var a wireAlert
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("alert %s: %v", b, err)
	}
	return a
}

// runner feeds one trace file to an engine and returns its alerts.
type runner func(t *testing.T, e *rules.Engine, trace string) []wireAlert

func replayRunner(t *testing.T, e *rules.Engine, trace string) []wireAlert {
	var out bytes.Buffer
	rp := &Replayer{Engine: e}
	if err := rp.Run(context.Background(), []string{filepath.Join(corpusDir, "traces", trace)}, &out); err != nil {
		t.Fatal(err)
	}
	var alerts []wireAlert
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		alerts = append(alerts, decodeAlert(t, sc.Bytes()))
	}
	return alerts
}

// collector is a Submitter that keeps what it is given.
type collector struct {
	mu     sync.Mutex
	alerts []*event.Event
}

func (c *collector) Submit(_ context.Context, ev *event.Event) error {
	c.mu.Lock()
	c.alerts = append(c.alerts, ev)
	c.mu.Unlock()
	return nil
}

// eventList wraps trace lines into the EventList kube-apiserver's batch webhook posts.
func eventList(lines [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[`)
	for i, l := range lines {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(l)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func httpRunner(t *testing.T, e *rules.Engine, trace string) []wireAlert {
	c := &collector{}
	srv := httptest.NewServer(NewHandler(e, c, Limits{}, nil))
	defer srv.Close()
	body := eventList(traceLines(t, filepath.Join(corpusDir, "traces", trace)))
	resp, err := http.Post(srv.URL+"/k8s-audit", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: status %d", trace, resp.StatusCode)
	}
	var alerts []wireAlert
	for _, a := range c.alerts {
		alerts = append(alerts, decodeAlert(t, a.JSON()))
	}
	return alerts
}

var runners = []struct {
	name string
	run  runner
}{{"replay", replayRunner}, {"http", httpRunner}}

func loadEngine(t testing.TB, matching rules.Matching, names ...string) *rules.Engine {
	t.Helper()
	var files []rules.File
	for _, n := range names {
		if n == "DEFAULT" {
			files = append(files, rules.DefaultFile())
			continue
		}
		b, err := os.ReadFile(filepath.Join(corpusDir, "test-rules", n))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, rules.File{Name: n, Data: b})
	}
	e, _, err := rules.Load(NewSource(), files, rules.Options{Matching: matching, Hostname: "HOSTNAME", Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func readTSV(t *testing.T, name string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatalf("corpus file: %v", err)
	}
	var rows [][]string
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if i > 0 && line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows
}

func countRules(alerts []wireAlert) map[string]int {
	m := map[string]int{}
	for _, a := range alerts {
		m[a.Rule]++
	}
	return m
}

// TestTraceCounts checks every line of expected-counts-{first,all}.tsv.
func TestTraceCounts(t *testing.T) {
	for _, mode := range []rules.Matching{rules.MatchFirst, rules.MatchAll} {
		want := map[string]map[string]int{}
		for _, row := range readTSV(t, "expected-counts-"+mode.String()+".tsv") {
			if want[row[0]] == nil {
				want[row[0]] = map[string]int{}
			}
			if row[1] != "-" {
				n, err := strconv.Atoi(row[2])
				if err != nil {
					t.Fatal(err)
				}
				want[row[0]][row[1]] = n
			}
		}
		e := loadEngine(t, mode, "DEFAULT")
		for _, r := range runners {
			for trace, w := range want {
				t.Run(fmt.Sprintf("%s/%s/%s", mode, r.name, trace), func(t *testing.T) {
					if got := countRules(r.run(t, e, trace)); !reflect.DeepEqual(got, w) {
						t.Errorf("alerts by rule = %v, want %v", got, w)
					}
				})
			}
		}
	}
}

// TestTraceAlerts checks the output text and output_fields of every alert of
// expected-alerts-{first,all}.jsonl (hostname and time aside).
func TestTraceAlerts(t *testing.T) {
	for _, mode := range []rules.Matching{rules.MatchFirst, rules.MatchAll} {
		data, err := os.ReadFile(filepath.Join(corpusDir, "expected-alerts-"+mode.String()+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]wireAlert{}
		for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
			var rec struct {
				Trace string          `json:"trace_file"`
				Alert json.RawMessage `json:"alert"`
			}
			if err := json.Unmarshal(line, &rec); err != nil {
				t.Fatal(err)
			}
			want[rec.Trace] = append(want[rec.Trace], decodeAlert(t, rec.Alert))
		}
		e := loadEngine(t, mode, "DEFAULT")
		for _, r := range runners {
			for _, path := range traceFiles(t) {
				trace := filepath.Base(path)
				t.Run(fmt.Sprintf("%s/%s/%s", mode, r.name, trace), func(t *testing.T) {
					got := r.run(t, e, trace)
					w := want[trace]
					if len(got) != len(w) {
						t.Fatalf("%d alerts, want %d", len(got), len(w))
					}
					sortAlerts(got)
					sortAlerts(w)
					for i := range w {
						if !reflect.DeepEqual(got[i], w[i]) {
							t.Errorf("alert %d:\n got %+v\nwant %+v", i, got[i], w[i])
						}
					}
				})
			}
		}
	}
}

func sortAlerts(a []wireAlert) {
	sort.SliceStable(a, func(i, j int) bool {
		if a[i].Output != a[j].Output {
			return a[i].Output < a[j].Output
		}
		return a[i].Rule < a[j].Rule
	})
}

// TestTraceCasesWithExtraRules checks every case of cases-with-extra-rules.tsv.
func TestTraceCasesWithExtraRules(t *testing.T) {
	for _, row := range readTSV(t, "cases-with-extra-rules.tsv") {
		trace, name, files, expected := row[0], row[1], strings.Split(row[2], " + "), row[3]
		want := map[string]int{}
		if !strings.HasPrefix(expected, "NO alerts") {
			i := strings.LastIndex(expected, ": ")
			n, err := strconv.Atoi(expected[i+2:])
			if i < 0 || err != nil {
				t.Fatalf("case %s: cannot read expectation %q", name, expected)
			}
			want[expected[:i]] = n
		}
		e := loadEngine(t, rules.MatchFirst, files...)
		for _, r := range runners {
			t.Run(r.name+"/"+name, func(t *testing.T) {
				if got := countRules(r.run(t, e, trace)); !reflect.DeepEqual(got, want) {
					t.Errorf("%s with %v: alerts by rule = %v, want %v", trace, files, got, want)
				}
			})
		}
	}
}
