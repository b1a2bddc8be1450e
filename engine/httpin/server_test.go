package httpin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/enrich"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
	"github.com/saker-dev/saker/engine/pipeline"
	"github.com/saker-dev/saker/internal/testpeers"
)

const goodEvent = `{"output":"16:31:56.746609046: Error File below a known binary directory opened for writing","hostname":"localhost","priority":"Error","rule":"Write below binary dir","time":"2019-05-17T15:31:56.746609046Z","output_fields":{"evt.time":1507591916746609046,"fd.name":"/bin/hack"}}`

// sink is an output that hands each event to the test.
type sink struct {
	name string
	got  chan *event.Event
}

func (s *sink) Name() string { return s.name }
func (s *sink) Send(ctx context.Context, ev *event.Event) error {
	select {
	case s.got <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type fixture struct {
	srv  *httptest.Server
	eng  *delivery.Engine
	m    *metrics.Metrics
	a, b *sink
}

// newFixture serves the handlers over two outputs; b only takes errors and above. The engine
// is not started unless start is true, so queues fill.
func newFixture(t *testing.T, start bool, pol func(*delivery.Policy)) *fixture {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &fixture{m: metrics.New(0), a: &sink{"a", make(chan *event.Event, 100)}, b: &sink{"b", make(chan *event.Event, 100)}}
	f.eng = delivery.NewEngine(delivery.NewMemoryBus(), f.m, nil, log)
	p := delivery.DefaultPolicy()
	p.QueueSize = 4
	p.BlockTimeout = 10 * time.Millisecond
	if pol != nil {
		pol(&p)
	}
	if err := f.eng.Add(f.a, p); err != nil {
		t.Fatal(err)
	}
	p.MinimumPriority = "error"
	if err := f.eng.Add(f.b, p); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(newServer(t, Options{MaxBodySize: 4096, Version: "v-test"}, f.eng, f.m, log))
	t.Cleanup(f.srv.Close)
	if start {
		f.eng.Start()
		t.Cleanup(func() { f.eng.Stop(time.Second) })
	}
	return f
}

// newServer is New over eng, behind a pipeline without enrichment.
func newServer(t *testing.T, opts Options, eng *delivery.Engine, m *metrics.Metrics, log *slog.Logger) *Server {
	t.Helper()
	enr, err := enrich.New(enrich.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return New(opts, pipeline.New(enr, eng, m, log), eng, m, log)
}

func (f *fixture) do(t *testing.T, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func errorOf(t *testing.T, body []byte) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not {\"error\":...}", body)
	}
	return e.Error
}

func TestPostEventAccepted(t *testing.T) {
	f := newFixture(t, true, nil)
	resp, body := f.do(t, "POST", "/", goodEvent)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var acc struct {
		Status  string
		UUID    string
		Outputs []string
	}
	if err := json.Unmarshal(body, &acc); err != nil {
		t.Fatal(err)
	}
	if acc.Status != "accepted" || acc.UUID == "" || strings.Join(acc.Outputs, ",") != "a,b" {
		t.Errorf("answer %s", body)
	}
	for _, s := range []*sink{f.a, f.b} {
		select {
		case ev := <-s.got:
			if ev.UUID != acc.UUID || ev.Source != "syscalls" {
				t.Errorf("%s got uuid %q source %q", s.name, ev.UUID, ev.Source)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s got nothing", s.name)
		}
	}
}

func TestPostEventBelowMinimumPriority(t *testing.T) {
	f := newFixture(t, false, nil)
	resp, body := f.do(t, "POST", "/", strings.Replace(goodEvent, `"Error"`, `"notice"`, 1))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"outputs":["a"]`) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, false, nil)
	cases := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/", "", 405, "method GET not allowed"},
		{"PUT", "/", goodEvent, 405, "method PUT not allowed"},
		{"POST", "/", "", 400, "empty body"},
		{"POST", "/", `{"priority":"bogus","rule":"r","time":"2024-01-01T00:00:00Z"}`, 400, `priority "bogus" is not one of emergency, alert`},
		{"POST", "/", `{"priority":"info","time":"2024-01-01T00:00:00Z"}`, 400, `missing or empty "rule"`},
		{"POST", "/", `{"priority":"info","rule":"r","time":"0001-01-01T00:00:00Z"}`, 400, "zero time"},
		{"POST", "/", `{"priority":"info","rule":"r",`, 400, "offset"},
		{"POST", "/", `{"priority":"info","rule":"r","time":"2024-01-01T00:00:00Z"}}`, 400, "unexpected data after the event"},
		{"POST", "/", `{"rule":"` + strings.Repeat("x", 5000) + `"}`, 413, "larger than the 4096 bytes limit (maxbodysize)"},
		{"POST", "/", goodEvent + strings.Repeat(" ", 5000), 413, "maxbodysize"},
		{"POST", "/nope", goodEvent, 404, "no such endpoint /nope"},
		{"DELETE", "/test", "", 405, "not allowed on /test"},
		{"POST", "/test?output=nosuch", "", 404, `output "nosuch" is not enabled; enabled: a, b`},
		{"POST", "/?output=nosuch", goodEvent, 404, `output "nosuch" is not enabled; enabled: a, b`},
	}
	for _, c := range cases {
		resp, body := f.do(t, c.method, c.path, c.body)
		if resp.StatusCode != c.status {
			t.Errorf("%s %s %.40q: status %d, want %d: %s", c.method, c.path, c.body, resp.StatusCode, c.status, body)
			continue
		}
		if msg := errorOf(t, body); !strings.Contains(msg, c.want) {
			t.Errorf("%s %s: error %q, want %q", c.method, c.path, msg, c.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("content type %q", ct)
		}
	}
	if resp, _ := f.do(t, "GET", "/", ""); resp.Header.Get("Allow") != "POST" {
		t.Errorf("405 without Allow: POST")
	}
}

func TestQueueFullIs503WithRetryAfter(t *testing.T) {
	f := newFixture(t, false, nil) // not started: queues of 4 fill up
	for i := 0; i < 4; i++ {
		if resp, body := f.do(t, "POST", "/", goodEvent); resp.StatusCode != 200 {
			t.Fatalf("event %d: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body := f.do(t, "POST", "/", goodEvent)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if msg := errorOf(t, body); !strings.Contains(msg, "queue full") {
		t.Errorf("error %q", msg)
	}
	if d := f.eng.Health()[0].QueueDepth; d != 4 {
		t.Errorf("depth %d after refusal", d)
	}
}

func TestDropNewestAnswersWithDropped(t *testing.T) {
	f := newFixture(t, false, func(p *delivery.Policy) { p.WhenFull = delivery.WhenFullDropNewest; p.QueueSize = 1 })
	f.do(t, "POST", "/", goodEvent)
	resp, body := f.do(t, "POST", "/", goodEvent)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"outputs":[]`) || !strings.Contains(string(body), `"dropped":["a","b"]`) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

func TestTestEndpoint(t *testing.T) {
	f := newFixture(t, true, nil)
	resp, body := f.do(t, "POST", "/test", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"outputs":["a","b"]`) {
		t.Fatalf("%d %s (the debug test event must bypass b's minimumpriority)", resp.StatusCode, body)
	}
	for _, s := range []*sink{f.a, f.b} {
		ev := <-s.got
		if ev.Rule != pipeline.TestRule || ev.Priority != event.Debug {
			t.Errorf("%s got %+v", s.name, ev)
		}
	}
	resp, body = f.do(t, "POST", "/test?output=b", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"outputs":["b"]`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	<-f.b.got
	select {
	case ev := <-f.a.got:
		t.Errorf("a got %v from /test?output=b", ev.Rule)
	default:
	}
}

// POST /?output=NAME sends the event to that output only (the dead-letter replay).
func TestEventToOneOutput(t *testing.T) {
	f := newFixture(t, true, nil)
	resp, body := f.do(t, "POST", "/?output=a", goodEvent)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"outputs":["a"]`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	<-f.a.got
	select {
	case ev := <-f.b.got:
		t.Errorf("b got %v from POST /?output=a", ev.Rule)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestPingAndHealth(t *testing.T) {
	f := newFixture(t, true, nil)
	if resp, body := f.do(t, "GET", "/ping", ""); resp.StatusCode != 200 || string(body) != "pong\n" {
		t.Errorf("ping: %d %q", resp.StatusCode, body)
	}
	f.do(t, "POST", "/", goodEvent)
	<-f.a.got
	<-f.b.got
	resp, body := f.do(t, "GET", "/healthz", "")
	if resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	var h struct {
		Status, Version, Uptime string
		Outputs                 []map[string]any
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "ok" || h.Version != "v-test" || h.Uptime == "" || len(h.Outputs) != 2 {
		t.Fatalf("healthz %s", body)
	}
	for _, k := range []string{"name", "state", "queue_depth", "queue_size", "in_flight", "delivered", "failed"} {
		if _, ok := h.Outputs[0][k]; !ok {
			t.Errorf("output health lacks %q: %s", k, body)
		}
	}
	if h.Outputs[0]["name"] != "a" || h.Outputs[0]["queue_size"] != 4.0 {
		t.Errorf("output a: %v", h.Outputs[0])
	}
}

func TestHealthDraining(t *testing.T) {
	f := newFixture(t, false, nil)
	f.srv.Config.Handler.(*Server).SetDraining()
	resp, body := f.do(t, "GET", "/healthz", "")
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"status":"draining"`) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, true, nil)
	f.do(t, "POST", "/", goodEvent)
	<-f.a.got
	<-f.b.got
	f.do(t, "POST", "/", "{")
	_, body := f.do(t, "GET", "/metrics", "")
	text := string(body)
	for _, want := range []string{
		`falcosecurity_falcosidekick_inputs_total{source="requests",status="accepted"} 1`,
		`falcosecurity_falcosidekick_inputs_total{source="requests",status="rejected"} 1`,
		`falcosecurity_falcosidekick_outputs_total{destination="a",status="ok"}`,
		`falcosecurity_falcosidekick_outputs_total{destination="b",status="error"} 0`,
		`falcosecurity_falcosidekick_falco_events_total{hostname="localhost",k8s_ns_name="",k8s_pod_name="",priority="5",priority_raw="error",rule="Write below binary dir",source="syscalls"} 1`,
		`saker_queue_capacity{output="a"} 4`,
		"saker_queue_depth", "saker_inflight", "saker_delivery_latency_seconds_bucket",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	t.Run("promtool check metrics", func(t *testing.T) {
		cmd := exec.Command(testpeers.Bin(t, "promtool"), "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		if err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	})
}
