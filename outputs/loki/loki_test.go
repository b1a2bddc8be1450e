package loki

import (
	"compress/gzip"
	"context"
	"encoding/json"
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

var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func loadEvents(t *testing.T) map[string]*event.Event {
	t.Helper()
	return goldens.Events(t, func(name string) string {
		return fmt.Sprintf("00000000-0000-4000-8000-%012d", len(name))
	})
}

func newOut(t *testing.T, c *Config) *Loki {
	t.Helper()
	if c.HostPort == "" {
		c.HostPort = "http://127.0.0.1:1"
	}
	l, err := New(c, outputs.Env{Log: slog.Default(), Policy: delivery.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return fixedNow }
	return l
}

// variants mirror the falcosidekick recordings (goldens.Recorded); timestamp=event
// reproduces falcosidekick's entry times.
func variants() map[string]*Config {
	d := defaults()
	d.Timestamp = TimestampEvent
	x := defaults()
	x.Timestamp = TimestampEvent
	x.ExtraLabels = []string{"ka.user.name", "proc.name", "proc.pid"}
	x.Tenant, x.User, x.APIKey = "acme", "u", "k"
	x.CustomHeaders = map[string]string{"X-Extra": "1"}
	j := defaults()
	j.Timestamp = TimestampEvent
	j.Format = "json"
	return map[string]*Config{"loki": d, "loki-extralabels-tenant": x, "loki-json": j}
}

func TestPayloadGolden(t *testing.T) {
	evs := loadEvents(t)
	for variant, cfg := range variants() {
		l := newOut(t, cfg)
		for name, ev := range evs {
			body, err := l.Body([]*event.Event{ev})
			if err != nil {
				t.Fatal(err)
			}
			goldens.Check(t, filepath.Join("testdata", "golden", variant, name+".json"), append(body, '\n'))
		}
	}
}

// TestShapeMatchesFalcosidekick: same streams, labels, timestamps and lines as falcosidekick
// for each event, except the documented difference (extralabels keep non-string fields).
func TestShapeMatchesFalcosidekick(t *testing.T) {
	evs := loadEvents(t)
	for variant, cfg := range variants() {
		l := newOut(t, cfg)
		for name, ev := range evs {
			req := goldens.Recorded(t, variant, name)
			if req.Path != "/loki"+cfg.Endpoint {
				t.Errorf("%s/%s: path %s, we use %s", variant, name, req.Path, cfg.Endpoint)
			}
			var theirs Push
			if err := json.Unmarshal([]byte(req.Body), &theirs); err != nil {
				t.Fatal(err)
			}
			if ev.Rule == "Test rule" {
				// falcosidekick's input rewrites the source of its test events (enrichment's
				// business, not this output's).
				ev = ev.Clone()
				ev.Source = "internal"
			}
			ours := l.Payload([]*event.Event{ev})
			if len(ours.Streams) != 1 || len(theirs.Streams) != 1 {
				t.Fatalf("%s/%s: %d streams, falcosidekick %d", variant, name, len(ours.Streams), len(theirs.Streams))
			}
			tl, ol := theirs.Streams[0].Stream, ours.Streams[0].Stream
			for k, v := range tl {
				if ol[k] != v {
					t.Errorf("%s/%s: label %s = %q, falcosidekick %q", variant, name, k, ol[k], v)
				}
			}
			for k, v := range ol {
				if _, ok := tl[k]; !ok && !(k == "proc_pid" && v == "4242") {
					t.Errorf("%s/%s: extra label %s=%q", variant, name, k, v)
				}
			}
			tv, ov := theirs.Streams[0].Values[0], ours.Streams[0].Values[0]
			if tv[0] != ov[0] {
				t.Errorf("%s/%s: timestamp %s, falcosidekick %s", variant, name, ov[0], tv[0])
			}
			if cfg.Format == "json" {
				var a, b map[string]any
				_ = json.Unmarshal([]byte(tv[1]), &a)
				_ = json.Unmarshal([]byte(ov[1]), &b)
				delete(a, "uuid")
				delete(b, "uuid")
				sameTime(t, a, b) // falcosidekick trims trailing zeros of the fraction; saker prints Falco's nine digits
				// falcosidekick sorts the event's tags in place (mutating the shared
				// event); we send them in the order Falco did.
				if a["tags"] != nil {
					sortAny(a["tags"].([]any))
					sortAny(b["tags"].([]any))
				}
				if !reflect.DeepEqual(a, b) {
					t.Errorf("%s/%s: json line\n %v\nfalcosidekick %v", variant, name, b, a)
				}
			} else if tv[1] != ov[1] {
				t.Errorf("%s/%s: line %q, falcosidekick %q", variant, name, ov[1], tv[1])
			}
		}
	}
}

func ev(rule string, p event.Priority, host string, t time.Time) *event.Event {
	return &event.Event{UUID: "u-" + rule + t.String(), Output: "out " + rule, Priority: p, Rule: rule, Source: "syscalls",
		Hostname: host, Time: t, Tags: []string{"z", "a"}, OutputFields: map[string]any{"proc.name": "sh"}}
}

func TestBatchGroupsStreams(t *testing.T) {
	l := newOut(t, defaults())
	t0 := fixedNow.Add(-time.Minute)
	push := l.Payload([]*event.Event{
		ev("r1", event.Error, "h1", t0.Add(2*time.Second)),
		ev("r2", event.Error, "h1", t0),
		ev("r1", event.Error, "h1", t0.Add(time.Second)),
		ev("r1", event.Error, "h2", t0),
	})
	if len(push.Streams) != 3 {
		t.Fatalf("%d streams, want 3: %+v", len(push.Streams), push)
	}
	s := push.Streams[0]
	if s.Stream["rule"] != "r1" || s.Stream["hostname"] != "h1" || s.Stream["tags"] != "a,z" || len(s.Values) != 2 {
		t.Fatalf("first stream %+v", s)
	}
	if s.Values[0][0] >= s.Values[1][0] {
		t.Fatalf("entries not in time order: %v", s.Values)
	}
}

func TestTimestampModes(t *testing.T) {
	recv := fixedNow
	for _, tc := range []struct {
		mode    string
		evTime  time.Time
		want    time.Time
		comment string
	}{
		{TimestampAuto, recv.Add(-time.Minute), recv.Add(-time.Minute), "recent: event time"},
		{TimestampAuto, recv.Add(-48 * time.Hour), recv, "old: received"},
		{TimestampAuto, recv.Add(time.Hour), recv, "future: received"},
		{TimestampEvent, recv.Add(-48 * time.Hour), recv.Add(-48 * time.Hour), "event"},
		{TimestampReceived, recv.Add(-time.Minute), recv, "received"},
	} {
		c := defaults()
		c.Timestamp = tc.mode
		l := newOut(t, c)
		e := ev("r", event.Error, "h", tc.evTime)
		e.Received = recv
		if got := l.entryTime(e); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.comment, got, tc.want)
		}
	}
}

func TestLabelName(t *testing.T) {
	for in, want := range map[string]string{"ka.user.name": "ka_user_name", "proc.aname[2]": "proc_aname_2_", "9x": "_9x", "a_b": "a_b"} {
		if got := labelName(in); got != want {
			t.Errorf("labelName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzLabelName(f *testing.F) {
	f.Add("ka.user.name")
	f.Add("1ü")
	f.Fuzz(func(t *testing.T, s string) {
		got := labelName(s)
		for i, r := range got {
			if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
				t.Fatalf("labelName(%q) = %q", s, got)
			}
		}
	})
}

func TestValidateNamesKeys(t *testing.T) {
	for key, mut := range map[string]func(*Config){
		"loki.hostport":  func(c *Config) { c.HostPort = "localhost:3100" },
		"loki.endpoint":  func(c *Config) { c.Endpoint = "push" },
		"loki.format":    func(c *Config) { c.Format = "xml" },
		"loki.timestamp": func(c *Config) { c.Timestamp = "now" },
		"loki.apikey":    func(c *Config) { c.User = "u" },
	} {
		c := defaults()
		c.HostPort = "http://loki:3100"
		mut(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: Validate() = %v", key, err)
		}
	}
}

// TestHeadersAndGzip checks tenant, basic auth, custom headers and gzip on the wire, and
// that the API key never shows in an error.
func TestHeadersAndGzip(t *testing.T) {
	var mu sync.Mutex
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = r
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			rd = zr
		}
		body, _ = io.ReadAll(rd)
		if strings.Contains(string(body), "refuse") {
			http.Error(w, "entry too far behind", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c := defaults()
	c.HostPort = srv.URL
	c.Tenant, c.User, c.APIKey = "acme", "u", "s3cr3t-key"
	c.Gzip = true
	c.CustomHeaders = map[string]string{"X-Extra": "1"}
	l := newOut(t, c)
	if err := l.SendBatch(context.Background(), []*event.Event{ev("r", event.Error, "h", fixedNow)}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if got.URL.Path != "/loki/api/v1/push" || got.Header.Get("X-Scope-OrgID") != "acme" || got.Header.Get("X-Extra") != "1" ||
		got.Header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %v", got.URL.Path, got.Header)
	}
	if u, p, ok := got.BasicAuth(); !ok || u != "u" || p != "s3cr3t-key" {
		t.Errorf("basic auth %q %q %v", u, p, ok)
	}
	var push Push
	if err := json.Unmarshal(body, &push); err != nil || len(push.Streams) != 1 {
		t.Errorf("gzipped body %q: %v", body, err)
	}
	mu.Unlock()
	err := l.SendBatch(context.Background(), []*event.Event{ev("refuse", event.Error, "h", fixedNow)})
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("refused push: %v (want permanent, without the key)", err)
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

// TestIntegrationVictoriaLogs pushes a batch through the engine to VictoriaLogs' Loki
// endpoint (gzip on) and reads every entry back with LogsQL, labels and time included.
func TestIntegrationVictoriaLogs(t *testing.T) {
	vl := testpeers.StartVictoriaLogs(t, 0)
	c := defaults()
	c.HostPort = vl.URL
	c.Endpoint = "/insert/loki/api/v1/push"
	c.ExtraLabels = []string{"proc.name", "proc.pid"}
	c.Gzip = true
	c.Timestamp = TimestampEvent
	l, err := New(c, outputs.Env{Policy: delivery.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	eng := deliverytest.Start(t, l, batchPolicy())
	defer eng.Stop(time.Second)
	evs := loadEvents(t)
	for _, e := range evs {
		deliverytest.Publish(t, eng, e)
	}
	var rows []map[string]any
	testpeers.Eventually(t, 15*time.Second, func() bool { rows = vl.Query(t, "*"); return len(rows) == len(evs) },
		"want %d entries, got %d: %v", len(evs), len(rows), rows)
	for _, e := range evs {
		var row map[string]any
		for _, r := range rows {
			if r["rule"] == e.Rule && r["hostname"] == e.Hostname && r["_msg"] == e.Output {
				row = r
			}
		}
		if row == nil {
			t.Errorf("entry for %q not read back", e.Rule)
			continue
		}
		if row["priority"] != e.Priority.String() || row["source"] != e.Source {
			t.Errorf("%q: labels %v", e.Rule, row)
		}
		if ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(row["_time"])); !ts.Equal(e.Time) {
			t.Errorf("%q: _time %v, want %v", e.Rule, row["_time"], e.Time)
		}
		if pid, ok := e.OutputFields["proc.pid"]; ok && row["proc_pid"] != fmt.Sprint(pid) {
			t.Errorf("%q: proc_pid %v, want %v", e.Rule, row["proc_pid"], pid)
		}
	}
	if lost := eng.Stop(time.Second); lost != 0 {
		t.Fatalf("%d lost", lost)
	}
}

// TestDownThenUp: pushes fail while VictoriaLogs is down; once it is up every event arrives.
func TestDownThenUp(t *testing.T) {
	port := testpeers.FreePort(t)
	c := defaults()
	c.HostPort = fmt.Sprintf("http://127.0.0.1:%d", port)
	c.Endpoint = "/insert/loki/api/v1/push"
	l, err := New(c, outputs.Env{Policy: delivery.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	eng := deliverytest.Start(t, l, batchPolicy())
	const n = 250 // more than one batch
	for i := range n {
		e := ev(fmt.Sprintf("down-up-%d", i%7), event.Warning, "h", time.Now())
		e.Output = fmt.Sprintf("entry %d", i)
		deliverytest.Publish(t, eng, e)
	}
	deliverytest.WaitFailing(t, eng)
	vl := testpeers.StartVictoriaLogs(t, port)
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(vl.Query(t, "*")) == n },
		"want %d entries, got %d", n, len(vl.Query(t, "*")))
	if lost := eng.Stop(time.Second); lost != 0 {
		t.Fatalf("%d lost", lost)
	}
	seen := map[string]bool{}
	for _, r := range vl.Query(t, "*") {
		seen[fmt.Sprint(r["_msg"])] = true
	}
	for i := range n {
		if !seen[fmt.Sprintf("entry %d", i)] {
			t.Fatalf("entry %d missing", i)
		}
	}
}

// TestMinimumPriority routes through the engine: below loki.minimumpriority, nothing.
func TestMinimumPriority(t *testing.T) {
	vl := testpeers.StartVictoriaLogs(t, 0)
	c := defaults()
	c.HostPort = vl.URL
	c.Endpoint = "/insert/loki/api/v1/push"
	l, err := New(c, outputs.Env{Policy: delivery.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	p := batchPolicy()
	p.MinimumPriority = "critical"
	eng := deliverytest.Start(t, l, p)
	defer eng.Stop(time.Second)
	low, high := ev("low", event.Error, "h", time.Now()), ev("high", event.Critical, "h", time.Now())
	if r := eng.Route(low, ""); len(r) != 0 {
		t.Fatalf("error routed to %v despite minimumpriority=critical", r)
	}
	for _, e := range []*event.Event{low, high} {
		deliverytest.Publish(t, eng, e)
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(vl.Query(t, `rule:="high"`)) == 1 }, "critical entry missing")
	if rows := vl.Query(t, `rule:="low"`); len(rows) != 0 {
		t.Fatalf("error entry delivered: %v", rows)
	}
}

func sortAny(xs []any) {
	sort.Slice(xs, func(i, j int) bool { return fmt.Sprint(xs[i]) < fmt.Sprint(xs[j]) })
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
