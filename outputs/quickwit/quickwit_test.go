package quickwit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
)

func newOutput(t *testing.T, hostPort string, autoCreate bool) *Quickwit {
	t.Helper()
	c := defaults()
	c.HostPort, c.AutoCreateIndex = hostPort, autoCreate
	c.CustomHeaders = map[string]string{"Authorization": "Bearer qwtoken"}
	q, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// endpoint is a Quickwit node as strict as Quickwit: the token, describe and create index,
// and ingest of NDJSON documents into an index that exists.
type endpoint struct {
	mu      sync.Mutex
	indexes map[string]map[string]any // index id -> its config
	docs    []map[string]any
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer qwtoken" {
		http.Error(w, `{"message":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/describe"):
		if _, ok := e.indexes[strings.TrimSuffix(strings.TrimPrefix(path, "indexes/"), "/describe")]; !ok {
			http.Error(w, `{"message":"index not found"}`, http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	case r.Method == http.MethodPost && path == "indexes":
		var cfg map[string]any
		if err := json.NewDecoder(r.Body).Decode(&cfg); err != nil || cfg["index_id"] == nil || cfg["doc_mapping"] == nil {
			http.Error(w, `{"message":"invalid index config"}`, http.StatusBadRequest)
			return
		}
		id := cfg["index_id"].(string)
		if _, ok := e.indexes[id]; ok {
			http.Error(w, `{"message":"index `+"`"+id+"`"+` already exists"}`, http.StatusBadRequest)
			return
		}
		e.indexes[id] = cfg
		_, _ = w.Write([]byte(`{}`))
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/ingest"):
		if _, ok := e.indexes[strings.TrimSuffix(path, "/ingest")]; !ok {
			http.Error(w, `{"message":"index not found"}`, http.StatusNotFound)
			return
		}
		b, _ := io.ReadAll(r.Body)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var doc map[string]any
			if json.Unmarshal([]byte(line), &doc) != nil {
				http.Error(w, `{"message":"invalid document"}`, http.StatusBadRequest)
				return
			}
			e.docs = append(e.docs, doc)
		}
		_, _ = w.Write([]byte(`{"num_docs_for_processing":1}`))
	default:
		http.Error(w, `{"message":"route not found"}`, http.StatusNotFound)
	}
}

func newEndpoint(indexes ...string) *endpoint {
	e := &endpoint{indexes: map[string]map[string]any{}}
	for _, id := range indexes {
		e.indexes[id] = map[string]any{}
	}
	return e
}

// TestPayloadGolden: each document is the event's Falco JSON, ingested at falcosidekick's
// path.
func TestPayloadGolden(t *testing.T) {
	evs := goldens.Events(t, func(n string) string { return "uuid-" + n })
	q := newOutput(t, "http://127.0.0.1:1/quickwit", false)
	for _, name := range goldens.Names(evs) {
		if rec := goldens.Recorded(t, "quickwit", name); "http://127.0.0.1:1"+rec.Path != q.ingest {
			t.Fatalf("ingest URL %s, falcosidekick posts to %s", q.ingest, rec.Path)
		}
		goldens.SameEventJSON(t, "quickwit", name, evs[name].JSON())
	}
}

// TestAutoCreateIndex: with autocreateindex the index is created once, with a mapping whose
// timestamp is the event time, and events are ingested into it; an index that exists is
// left as it is.
func TestAutoCreateIndex(t *testing.T) {
	e := newEndpoint()
	srv := httptest.NewServer(e)
	defer srv.Close()
	q := newOutput(t, srv.URL, true)
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		if err := q.Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cfg := e.indexes["falco"]
	if cfg == nil || cfg["doc_mapping"].(map[string]any)["timestamp_field"] != "time" || len(e.docs) != len(evs) {
		t.Fatalf("index %v, %d documents", cfg, len(e.docs))
	}
}

func TestSendWithoutIndexFails(t *testing.T) {
	srv := httptest.NewServer(newEndpoint())
	defer srv.Close()
	err := newOutput(t, srv.URL, false).Send(context.Background(), goldens.Events(t, nil)["readme_try_event"])
	if err == nil || !delivery.IsPermanent(err) {
		t.Fatalf("want a permanent error for a missing index, got %v", err)
	}
}

func TestDownThenUpLosesNothing(t *testing.T) {
	deliverytest.DownThenUp(t, func(base string) delivery.Output { return newOutput(t, base, true) }, newEndpoint())
}

// TestMinimumPriority: quickwit.minimumpriority keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newOutput(t, base, false) }, newEndpoint("falco"))
}

func TestValidate(t *testing.T) {
	for key, c := range map[string]*Config{
		"quickwit.hostport": {HostPort: "quickwit:7280", Index: "falco"},
		"quickwit.index":    {HostPort: "http://quickwit:7280", Index: "a/b"},
	} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v, want an error naming %s", err, key)
		}
	}
}
