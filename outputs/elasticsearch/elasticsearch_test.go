package elasticsearch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

func loadEvents(t *testing.T) map[string]*event.Event {
	t.Helper()
	return goldens.Events(t, func(name string) string {
		return fmt.Sprintf("00000000-0000-4000-8000-%012d", len(name))
	})
}

func newOut(t *testing.T, c *Config) *Elasticsearch {
	t.Helper()
	if c.HostPort == "" {
		c.HostPort = "http://127.0.0.1:1"
	}
	e, err := New(c, outputs.Env{Log: slog.Default(), Policy: delivery.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func variants() map[string]*Config {
	f := defaults()
	f.FlattenFields, f.Suffix, f.Username, f.Password = true, "none", "elastic", "pw"
	return map[string]*Config{"elasticsearch": defaults(), "elasticsearch-batching": defaults(), "elasticsearch-flatten-nosuffix": f}
}

func TestBulkGolden(t *testing.T) {
	evs := loadEvents(t)
	for variant, cfg := range variants() {
		if variant == "elasticsearch-batching" {
			continue // same body as the default variant
		}
		e := newOut(t, cfg)
		for name, ev := range evs {
			body := e.Body([]*event.Event{ev})
			goldens.Check(t, filepath.Join("testdata", "golden", variant, name+".ndjson"), body)
		}
	}
}

// TestShapeMatchesFalcosidekick: each document is what falcosidekick indexes (Falco JSON plus
// @timestamp, flattened names when asked), the bulk action is the same, and the index date
// comes from the event time instead of the send time.
func TestShapeMatchesFalcosidekick(t *testing.T) {
	evs := loadEvents(t)
	for variant, cfg := range variants() {
		e := newOut(t, cfg)
		for name, ev := range evs {
			req := goldens.Recorded(t, variant, name)
			theirDoc := req.Body
			if strings.HasSuffix(req.Path, "/_bulk") {
				lines := strings.Split(strings.TrimSpace(req.Body), "\n")
				if len(lines) != 2 || lines[0] != `{"create":{"_index":"falco-<VARIES>"}}` {
					t.Fatalf("%s/%s: falcosidekick bulk %q", variant, name, req.Body)
				}
				theirDoc = lines[1]
			}
			if req.Headers["Authorization"] != "" && cfg.Username == "" {
				t.Errorf("%s/%s: falcosidekick authenticated", variant, name)
			}
			ours := strings.Split(strings.TrimSpace(string(e.Body([]*event.Event{ev}))), "\n")
			var action map[string]map[string]string
			if err := json.Unmarshal([]byte(ours[0]), &action); err != nil {
				t.Fatal(err)
			}
			wantIndex := "falco-" + ev.Time.UTC().Format("2006.01.02")
			if cfg.Suffix == "none" {
				wantIndex = "falco"
			}
			if action["create"]["_index"] != wantIndex || action["create"]["_id"] != ev.UUID {
				t.Errorf("%s/%s: action %s", variant, name, ours[0])
			}
			var a, b map[string]any
			if err := json.Unmarshal([]byte(theirDoc), &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(ours[1]), &b); err != nil {
				t.Fatal(err)
			}
			delete(a, "uuid")
			delete(b, "uuid")
			sameTime(t, a, b) // falcosidekick trims trailing zeros of the fraction; saker prints Falco's nine digits
			if ev.Rule == "Test rule" {
				delete(a, "source") // falcosidekick's input rewrites its test events' source
				delete(b, "source")
			}
			for _, m := range []map[string]any{a, b} {
				if tags, ok := m["tags"].([]any); ok { // falcosidekick sorts the shared event's tags in place
					sort.Slice(tags, func(i, j int) bool { return fmt.Sprint(tags[i]) < fmt.Sprint(tags[j]) })
				}
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s/%s: document\n %v\nfalcosidekick %v", variant, name, b, a)
			}
		}
	}
}

func TestIndexSuffixFromEventTime(t *testing.T) {
	ev := &event.Event{Time: time.Date(2024, 2, 29, 23, 59, 59, 0, time.FixedZone("x", -3600))} // 2024-03-01 UTC
	for suffix, want := range map[string]string{"daily": "falco-2024.03.01", "monthly": "falco-2024.03", "annually": "falco-2024", "none": "falco"} {
		c := defaults()
		c.Suffix = suffix
		if got := newOut(t, c).IndexFor(ev); got != want {
			t.Errorf("%s: %s, want %s", suffix, got, want)
		}
	}
}

func TestValidateNamesKeys(t *testing.T) {
	for key, mut := range map[string]func(*Config){
		"elasticsearch.hostport":       func(c *Config) { c.HostPort = "es:9200" },
		"elasticsearch.suffix":         func(c *Config) { c.Suffix = "weekly" },
		"elasticsearch.index":          func(c *Config) { c.Index = "Falco" },
		"elasticsearch.numberofshards": func(c *Config) { c.CreateIndexTemplate, c.NumberOfShards = true, 0 },
	} {
		c := defaults()
		c.HostPort = "http://es:9200"
		mut(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: Validate() = %v", key, err)
		}
	}
}

// fakeES answers like Elasticsearch (product header included) and records requests.
type fakeES struct {
	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
	handle   func(w http.ResponseWriter, r *http.Request, body string)
}

func (f *fakeES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.bodies = append(f.bodies, string(body))
	f.mu.Unlock()
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	f.handle(w, r, string(body))
}

func sample(i int, p event.Priority) *event.Event {
	return &event.Event{UUID: fmt.Sprintf("uuid-%d", i), Output: fmt.Sprintf("output %d", i), Priority: p,
		Rule: fmt.Sprintf("rule %d", i%3), Source: "syscalls", Hostname: "h", Time: time.Now().UTC(),
		OutputFields: map[string]any{"proc.name": "sh", "n": json.Number(fmt.Sprint(i))}}
}

// TestPerDocumentErrors: a mapping error is permanent with ES's reason, a 429 is transient,
// a 409 on create (already indexed by an earlier try) is success, the rest succeed.
func TestPerDocumentErrors(t *testing.T) {
	f := &fakeES{handle: func(w http.ResponseWriter, r *http.Request, body string) {
		fmt.Fprint(w, `{"took":1,"errors":true,"items":[
{"create":{"_index":"falco","status":201}},
{"create":{"_index":"falco","status":400,"error":{"type":"document_parsing_exception","reason":"[1:2] failed to parse field [output_fields.n] of type [long]"}}},
{"create":{"_index":"falco","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
{"create":{"_index":"falco","status":409,"error":{"type":"version_conflict_engine_exception","reason":"document already exists"}}}]}`)
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := defaults()
	c.HostPort = srv.URL + "/prefix"
	c.Pipeline = "falco-pipe"
	c.Username, c.Password = "elastic", "s3cr3t-pw"
	e := newOut(t, c)
	err := e.SendBatch(context.Background(), []*event.Event{sample(0, event.Error), sample(1, event.Error), sample(2, event.Error), sample(3, event.Error)})
	var be *delivery.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 2 {
		t.Fatalf("err %v, want a BatchError with 2 failures", err)
	}
	if !delivery.IsPermanent(be.Failed[1]) || !strings.Contains(be.Failed[1].Error(), "document_parsing_exception") {
		t.Errorf("mapping error: %v", be.Failed[1])
	}
	if delivery.IsPermanent(be.Failed[2]) {
		t.Errorf("429 must be transient: %v", be.Failed[2])
	}
	f.mu.Lock()
	r := f.requests[0]
	if r.URL.Path != "/prefix/_bulk" || r.URL.Query().Get("pipeline") != "falco-pipe" {
		t.Errorf("request %s", r.URL)
	}
	if u, p, ok := r.BasicAuth(); !ok || u != "elastic" || p != "s3cr3t-pw" {
		t.Errorf("basic auth %q %q", u, p)
	}
	if n := strings.Count(f.bodies[0], "\n"); n != 8 {
		t.Errorf("bulk body has %d lines, want 8", n)
	}
	f.mu.Unlock()
}

func TestRequestErrors(t *testing.T) {
	status := http.StatusServiceUnavailable
	f := &fakeES{handle: func(w http.ResponseWriter, r *http.Request, body string) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":"unavailable"}`)
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := defaults()
	c.HostPort = srv.URL
	c.APIKey = "a3BpLWtleQ=="
	e := newOut(t, c)
	err := e.SendBatch(context.Background(), []*event.Event{sample(0, event.Error)})
	if d, ok := delivery.RetryAfterHint(err); err == nil || delivery.IsPermanent(err) || !ok || d != 7*time.Second {
		t.Fatalf("503: %v (hint %v)", err, d)
	}
	if got := f.requests[0].Header.Get("Authorization"); got != "APIKey a3BpLWtleQ==" && got != "ApiKey a3BpLWtleQ==" {
		t.Errorf("Authorization %q", got)
	}
	status = http.StatusUnauthorized
	if err := e.SendBatch(context.Background(), []*event.Event{sample(0, event.Error)}); !delivery.IsPermanent(err) || strings.Contains(err.Error(), "a3BpLWtleQ") {
		t.Fatalf("401: %v", err)
	}
	// Nothing listening: transient, and the password is not in the error.
	c = defaults()
	c.HostPort = fmt.Sprintf("http://elastic:pw-XYZ@127.0.0.1:%d", testpeers.FreePort(t))
	c.Password = "pw-XYZ"
	err = newOut(t, c).SendBatch(context.Background(), []*event.Event{sample(0, event.Error)})
	if err == nil || delivery.IsPermanent(err) || strings.Contains(err.Error(), "pw-XYZ") {
		t.Fatalf("refused connection: %v", err)
	}
}

func TestIndexTemplate(t *testing.T) {
	templateStatus := http.StatusOK
	f := &fakeES{handle: func(w http.ResponseWriter, r *http.Request, body string) {
		if r.Method == http.MethodPut {
			w.WriteHeader(templateStatus)
			fmt.Fprint(w, `{"acknowledged":true}`)
			return
		}
		fmt.Fprint(w, `{"errors":false,"items":[{"create":{"status":201}}]}`)
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := defaults()
	c.HostPort = srv.URL
	c.CreateIndexTemplate = true
	c.NumberOfShards, c.NumberOfReplicas = 1, 0
	e := newOut(t, c)
	for range 2 {
		if err := e.SendBatch(context.Background(), []*event.Event{sample(0, event.Error)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.requests) != 3 || f.requests[0].Method != http.MethodPut || f.requests[0].URL.Path != "/_index_template/falco" ||
		f.requests[0].URL.Query().Get("create") != "true" {
		t.Fatalf("requests: %d, first %s %s", len(f.requests), f.requests[0].Method, f.requests[0].URL)
	}
	var tpl map[string]any
	_ = json.Unmarshal([]byte(f.bodies[0]), &tpl)
	if fmt.Sprint(tpl["index_patterns"]) != "[falco-*]" || !strings.Contains(f.bodies[0], `"number_of_shards":1`) {
		t.Errorf("template %s", f.bodies[0])
	}
	if !strings.Contains(f.bodies[1], `"proc_name":"sh"`) {
		t.Errorf("createindextemplate must flatten field names: %s", f.bodies[1])
	}
	// A server refusing templates does not stop indexing.
	templateStatus = http.StatusBadRequest
	e = newOut(t, c)
	if err := e.SendBatch(context.Background(), []*event.Event{sample(0, event.Error)}); err != nil {
		t.Fatalf("template refused: %v", err)
	}
}

func batchPolicy() delivery.Policy {
	p := delivery.DefaultPolicy()
	p.Batch = delivery.BatchPolicy{MaxEvents: 100, MaxBytes: 1 << 20, FlushInterval: 200 * time.Millisecond}
	p.Retry.Initial = 50 * time.Millisecond
	p.Retry.Max = 200 * time.Millisecond
	p.Timeout = 2 * time.Second
	return p
}

// vlConfig points the output at VictoriaLogs' _bulk endpoint, telling it (through its
// headers) which fields hold the message and the time.
func vlConfig(url string) *Config {
	c := defaults()
	c.HostPort = url + "/insert/elasticsearch"
	c.CustomHeaders = map[string]string{"VL-Msg-Field": "output", "VL-Time-Field": "@timestamp"}
	return c
}

// TestIntegrationVictoriaLogs indexes the sample events through the engine into
// VictoriaLogs' _bulk endpoint and reads each back with LogsQL.
func TestIntegrationVictoriaLogs(t *testing.T) {
	vl := testpeers.StartVictoriaLogs(t, 0)
	c := vlConfig(vl.URL)
	c.EnableCompression = true
	e, err := New(c, outputs.Env{Policy: delivery.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	eng := deliverytest.Start(t, e, batchPolicy())
	evs := loadEvents(t)
	for _, ev := range evs {
		deliverytest.Publish(t, eng, ev)
	}
	var rows []map[string]any
	testpeers.Eventually(t, 15*time.Second, func() bool { rows = vl.Query(t, "*"); return len(rows) == len(evs) },
		"want %d documents, got %d: %v", len(evs), len(rows), rows)
	for name, ev := range evs {
		var row map[string]any
		for _, r := range rows {
			if r["uuid"] == ev.UUID {
				row = r
			}
		}
		if row == nil {
			t.Errorf("%s not read back", name)
			continue
		}
		if row["rule"] != ev.Rule || row["_msg"] != ev.Output || row["priority"] != ev.Priority.String() {
			t.Errorf("%s: %v", name, row)
		}
		if ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(row["_time"])); !ts.Equal(ev.Time) {
			t.Errorf("%s: _time %v, want %v", name, row["_time"], ev.Time)
		}
		if v, ok := ev.OutputFields["fd.name"].(string); ok && row["output_fields.fd.name"] != v {
			t.Errorf("%s: output_fields.fd.name %v, want %q", name, row["output_fields.fd.name"], v)
		}
	}
	if lost := eng.Stop(time.Second); lost != 0 {
		t.Fatalf("%d lost", lost)
	}
}

// TestDownThenUp: _bulk fails while VictoriaLogs is down; once it is up every event arrives.
func TestDownThenUp(t *testing.T) {
	port := testpeers.FreePort(t)
	e, err := New(vlConfig(fmt.Sprintf("http://127.0.0.1:%d", port)), outputs.Env{Policy: delivery.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	eng := deliverytest.Start(t, e, batchPolicy())
	const n = 250
	for i := range n {
		ev := sample(i, event.Warning)
		deliverytest.Publish(t, eng, ev)
	}
	deliverytest.WaitFailing(t, eng)
	vl := testpeers.StartVictoriaLogs(t, port)
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(vl.Query(t, "*")) == n },
		"want %d documents, got %d", n, len(vl.Query(t, "*")))
	if lost := eng.Stop(time.Second); lost != 0 {
		t.Fatalf("%d lost", lost)
	}
	seen := map[string]bool{}
	for _, r := range vl.Query(t, "*") {
		seen[fmt.Sprint(r["uuid"])] = true
	}
	for i := range n {
		if !seen[fmt.Sprintf("uuid-%d", i)] {
			t.Fatalf("document %d missing", i)
		}
	}
}

// TestMinimumPriority routes through the engine: below elasticsearch.minimumpriority, nothing.
func TestMinimumPriority(t *testing.T) {
	vl := testpeers.StartVictoriaLogs(t, 0)
	e, err := New(vlConfig(vl.URL), outputs.Env{Policy: delivery.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	p := batchPolicy()
	p.MinimumPriority = "critical"
	eng := deliverytest.Start(t, e, p)
	defer eng.Stop(time.Second)
	low, high := sample(1, event.Error), sample(2, event.Critical)
	if r := eng.Route(low, ""); len(r) != 0 {
		t.Fatalf("error routed to %v despite minimumpriority=critical", r)
	}
	for _, ev := range []*event.Event{low, high} {
		deliverytest.Publish(t, eng, ev)
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(vl.Query(t, `uuid:="uuid-2"`)) == 1 }, "critical document missing")
	if rows := vl.Query(t, `uuid:="uuid-1"`); len(rows) != 0 {
		t.Fatalf("error document delivered: %v", rows)
	}
}

// sameTime replaces equal "time" values spelled differently (RFC 3339 with or without
// trailing fractional zeros) by one spelling, and fails when they are different instants.
func sameTime(t *testing.T, a, b map[string]any) {
	t.Helper()
	ta, errA := time.Parse(time.RFC3339Nano, fmt.Sprint(a["time"]))
	tb, errB := time.Parse(time.RFC3339Nano, fmt.Sprint(b["time"]))
	if errA != nil || errB != nil || !ta.Equal(tb) {
		t.Errorf("time %v, falcosidekick %v", b["time"], a["time"])
		return
	}
	b["time"] = a["time"]
}
