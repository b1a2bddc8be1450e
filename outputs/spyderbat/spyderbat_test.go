package spyderbat

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
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
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

const (
	org = "org-123"
	key = "SECRET-api-key"
)

// api is a strict stand-in for Spyderbat's API as falcosidekick's output uses it: with the
// organisation's bearer key, GET /api/v1/org/<org>/source/ lists the sources, POST there
// creates one ({name, description, uid}: nothing else, name 1-32 characters, description
// at most 256, a new uid), and POST .../source/<uid>/data/sb-agent takes gzipped NDJSON
// falco_alert::1.0.0 records for an existing source (404 otherwise).
type api struct {
	mu      sync.Mutex
	sources []source
	records map[string][]map[string]any // by source uid
	creates int
}

func newAPI() *api { return &api{records: map[string][]map[string]any{}} }

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+key {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/org/"+org+"/source/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case rest == "" && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(a.sources)
	case rest == "" && r.Method == http.MethodPost:
		var s source
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil || s.Name == "" || len(s.Name) > 32 || len(s.Description) > 256 || s.UID == "" {
			http.Error(w, fmt.Sprintf("bad source %+v: %v", s, err), http.StatusBadRequest)
			return
		}
		for _, have := range a.sources {
			if have.UID == s.UID {
				http.Error(w, "source exists", http.StatusBadRequest)
				return
			}
		}
		a.sources = append(a.sources, s)
		a.creates++
	case strings.HasSuffix(rest, "/data/sb-agent") && r.Method == http.MethodPost:
		uid := strings.TrimSuffix(rest, "/data/sb-agent")
		if !slicesHasUID(a.sources, uid) {
			http.Error(w, "no such source", http.StatusNotFound)
			return
		}
		if r.Header.Get("Content-Type") != "application/ndjson" || r.Header.Get("Content-Encoding") != "gzip" {
			http.Error(w, "gzipped application/ndjson expected", http.StatusUnsupportedMediaType)
			return
		}
		recs, err := decodeRecords(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.records[uid] = append(a.records[uid], recs...)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

func slicesHasUID(ss []source, uid string) bool {
	for _, s := range ss {
		if s.UID == uid {
			return true
		}
	}
	return false
}

// decodeRecords reads gzipped NDJSON falco_alert::1.0.0 records: every field present with
// its type, no other field.
func decodeRecords(body io.Reader) ([]map[string]any, error) {
	zr, err := gzip.NewReader(body)
	if err != nil {
		return nil, fmt.Errorf("not gzip: %w", err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec record
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
		var m map[string]any
		_ = json.Unmarshal(sc.Bytes(), &m)
		for _, k := range []string{"schema", "id", "monotonic_time", "orc_time", "time", "pid", "level", "msg", "args", "container"} {
			if _, ok := m[k]; !ok {
				return nil, fmt.Errorf("record without %s", k)
			}
		}
		if rec.Schema != "falco_alert::1.0.0" || rec.ID == "" || rec.Time <= 0 || rec.OrcTime <= 0 || rec.Message == nil {
			return nil, fmt.Errorf("bad record %s", sc.Bytes())
		}
		if !strings.Contains(" critical high medium low info ", " "+rec.Level+" ") {
			return nil, fmt.Errorf("bad level %q", rec.Level)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no record")
	}
	return out, sc.Err()
}

func (a *api) snapshot(uid string) ([]map[string]any, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]map[string]any(nil), a.records[uid]...), a.creates
}

func newOutput(t testing.TB, base string) *Output {
	t.Helper()
	c := defaults()
	c.OrgUID, c.APIKey, c.APIURL, c.SourceDescription = org, key, base, "saker tests"
	o, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestPayloadGolden: the 8 recorded events as records (times that depend on the moment
// replaced), after the source was created once with falcosidekick's uid.
func TestPayloadGolden(t *testing.T) {
	a := newAPI()
	srv := posttest.Server(t, a)
	o := newOutput(t, srv.URL)
	evs := goldens.Events(t, func(name string) string { return "uuid-" + name })
	for _, name := range goldens.Names(evs) {
		if err := o.Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	recs, creates := a.snapshot("falcosidekick_" + org)
	if creates != 1 || len(recs) != len(evs) {
		t.Fatalf("%d sources created, %d records; want 1 and %d", creates, len(recs), len(evs))
	}
	if a.sources[0] != (source{Name: "falcosidekick", Description: "saker tests", UID: "falcosidekick_" + org}) {
		t.Errorf("source = %+v", a.sources[0])
	}
	for i, name := range goldens.Names(evs) {
		rec := recs[i]
		if rec["id"] != "uuid-"+name {
			t.Errorf("%s: id %v", name, rec["id"])
		}
		rec["monotonic_time"], rec["orc_time"] = "VARIES", "VARIES"
		b, _ := json.Marshal(rec)
		goldens.Check(t, filepath.Join("testdata", name+".json"), goldens.IndentJSON(t, b))
	}
}

// TestMapping: evt.time, proc.pid, proc.cmdline and container.id as falcosidekick reads them.
func TestMapping(t *testing.T) {
	now := time.Unix(1700000100, 500)
	ev := &event.Event{Output: "10:00:00.000000000: Critical Shell spawned (user=root)", Priority: event.Critical,
		Time: time.Unix(1700000000, 0), OutputFields: map[string]any{"evt.time": json.Number("1700000000123456789"),
			"proc.pid": json.Number("4242"), "proc.cmdline": "bash -i", "container.id": "abc123"}}
	r := newRecord(ev, now)
	if r.PID != 4242 || r.Args != "bash -i" || r.Container != "abc123" || r.Level != "critical" ||
		strings.Join(r.Message, " ") != "Shell spawned (user=root)" || r.Time < 1700000000.12 || r.Time > 1700000000.13 ||
		r.OrcTime != 1700000100.0000005 {
		t.Errorf("record = %+v", r)
	}
	ev.OutputFields = nil
	if r := newRecord(ev, now); r.Time != 1700000000 || r.PID != 0 || r.Message == nil {
		t.Errorf("without fields: %+v", r)
	}
}

// TestSourceExists: an existing source is used, not created again; a wrong key is a
// permanent error.
func TestSourceExists(t *testing.T) {
	a := newAPI()
	a.sources = []source{{Name: "x", UID: "falcosidekick_" + org}}
	srv := posttest.Server(t, a)
	ev := goldens.Events(t, nil)["many_fields"]
	if err := newOutput(t, srv.URL).Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if _, creates := a.snapshot(""); creates != 0 {
		t.Errorf("the existing source was created again")
	}
	c := defaults()
	c.OrgUID, c.APIKey, c.APIURL = org, "wrong", srv.URL
	o, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Send(context.Background(), ev); err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "401") {
		t.Errorf("want a permanent 401, got %v", err)
	}
}

// TestDownThenUp: events published while the API is down (the source not created yet)
// are all delivered once it is up, each once.
func TestDownThenUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	eng := deliverytest.Start(t, newOutput(t, "http://"+addr), deliverytest.Policy(""))
	const n = 10
	for i := range n {
		deliverytest.Publish(t, eng, &event.Event{UUID: fmt.Sprintf("id-%02d", i), Rule: "r", Priority: event.Notice,
			Output: fmt.Sprintf("10:00:00: Notice saker test event %02d", i), Time: time.Now(), Source: "syscall"})
	}
	deliverytest.WaitFailing(t, eng)
	a := newAPI()
	if l, err = net.Listen("tcp", addr); err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: a}}
	srv.Start()
	t.Cleanup(srv.Close)
	testpeers.Eventually(t, 20*time.Second, func() bool { recs, _ := a.snapshot("falcosidekick_" + org); return len(recs) >= n },
		"the API did not get all %d records", n)
	eng.Stop(200 * time.Millisecond)
	recs, creates := a.snapshot("falcosidekick_" + org)
	seen := map[any]int{}
	for _, r := range recs {
		seen[r["id"]]++
	}
	if len(recs) != n || len(seen) != n || creates != 1 {
		t.Errorf("%d records, %d distinct, %d sources created; want %d, %d, 1", len(recs), len(seen), creates, n, n)
	}
}

// TestDeadline: a hung API is abandoned when the attempt's context ends.
func TestDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := posttest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := newOutput(t, srv.URL).Send(ctx, goldens.Events(t, nil)["many_fields"])
	if err == nil || delivery.IsPermanent(err) || time.Since(start) > 2*time.Second {
		t.Fatalf("want a transient error within the deadline, got %v after %v", err, time.Since(start))
	}
}

func TestValidate(t *testing.T) {
	c := defaults()
	c.OrgUID = org
	posttest.Refused(t, c.Validate(), "spyderbat.apikey must be set")
	c.APIKey = key
	c.Source = strings.Repeat("s", 33)
	posttest.Refused(t, c.Validate(), "spyderbat.source must be 1 to 32 characters")
	c.Source, c.SourceDescription = "s", strings.Repeat("d", 257)
	posttest.Refused(t, c.Validate(), "spyderbat.sourcedescription must be at most 256")
	c.SourceDescription, c.APIURL = "", "api.spyderbat.com"
	posttest.Refused(t, c.Validate(), "spyderbat.apiurl")
}
