package pagerduty

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

func newOutput(t *testing.T, endpoint string) *falcopost.Output {
	t.Helper()
	c := defaults()
	c.RoutingKey, c.Endpoint = "pdkey", endpoint
	p, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPayloadGolden checks each trigger against saker's golden file and against what
// falcosidekick sent (through a proxy, to the real Events API URL): the same keys and
// values, except the severity (falcosidekick sent "critical" for every priority) and the
// timestamp (it dropped the fraction of a second).
func TestPayloadGolden(t *testing.T) {
	evs := goldens.Events(t, func(n string) string { return "uuid-" + n })
	p := defaults()
	p.RoutingKey = "pdkey"
	for _, name := range goldens.Names(evs) {
		t.Run(name, func(t *testing.T) {
			body, err := chat.EncodeJSON(p.Build(evs[name]))
			if err != nil {
				t.Fatal(err)
			}
			goldens.Check(t, filepath.Join("testdata", name+".json"), goldens.IndentJSON(t, body))
			rec := goldens.Recorded(t, "pagerduty-via-mitm-proxy", name)
			if p.url() != "https://events.pagerduty.com/v2/enqueue" || rec.Method != http.MethodPost {
				t.Fatalf("URL %s", p.url())
			}
			fsk, ours := chattest.Falcosidekick(t, "pagerduty-via-mitm-proxy", name), chattest.Decode(t, body)
			for _, k := range []string{"routing_key", "event_action"} {
				if ours[k] != fsk[k] {
					t.Errorf("%s = %v, falcosidekick sends %v", k, ours[k], fsk[k])
				}
			}
			fp, op := fsk["payload"].(map[string]any), ours["payload"].(map[string]any)
			for _, k := range []string{"summary", "source"} {
				if op[k] != fp[k] {
					t.Errorf("payload.%s = %v, falcosidekick sends %v", k, op[k], fp[k])
				}
			}
			if op["severity"] != Severities[evs[name].Priority] {
				t.Errorf("severity %v for %s", op["severity"], evs[name].Priority)
			}
			if ts, err := time.Parse(time.RFC3339Nano, op["timestamp"].(string)); err != nil || !ts.Equal(evs[name].Time) {
				t.Errorf("timestamp %v, event time %v", op["timestamp"], evs[name].Time)
			}
			od := op["custom_details"].(map[string]any)
			for k, v := range fp["custom_details"].(map[string]any) {
				if b, _ := json.Marshal(od[k]); string(b) != mustJSON(v) {
					t.Errorf("custom_details[%s] = %v, falcosidekick sends %v", k, od[k], v)
				}
			}
			if ours["dedup_key"] != "uuid-"+name {
				t.Errorf("dedup_key %v", ours["dedup_key"])
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// endpoint is the Events API v2 as strict as PagerDuty: a JSON trigger with the known keys,
// a 32-character routing key it knows, a summary, a source and a valid severity; it answers
// 202 {"status": "success", "dedup_key": ...}.
type endpoint struct {
	mu       sync.Mutex
	throttle bool
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	e.mu.Lock()
	throttle := e.throttle
	e.mu.Unlock()
	if throttle {
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"status": "throttle exceeded", "message": "Requests for this service are arriving too quickly."}`))
		return
	}
	var ev Event
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(&ev)
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/v2/enqueue":
		w.WriteHeader(http.StatusNotFound)
		return
	case err != nil || ev.EventAction != "trigger" || ev.Payload.Summary == "" || ev.Payload.Source == "" ||
		!strings.Contains("critical error warning info", ev.Payload.Severity) || ev.Payload.Severity == "":
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"status": "invalid event", "message": "Event object is invalid", "errors": ["..."]}`))
		return
	case ev.RoutingKey != "pdkey":
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"status": "invalid event", "message": "Event object is invalid", "errors": ["Invalid routing key"]}`))
		return
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status": "success", "message": "Event processed", "dedup_key": "` + ev.DedupKey + `"}`))
}

func TestSendToStrictEndpoint(t *testing.T) {
	e := &endpoint{}
	srv := httptest.NewServer(e)
	defer srv.Close()
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		if err := newOutput(t, srv.URL+"/v2/enqueue").Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	c := defaults()
	c.RoutingKey, c.Endpoint = "WRONGKEY", srv.URL+"/v2/enqueue"
	wrong, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.Send(context.Background(), evs["readme_try_event"]); err == nil || !delivery.IsPermanent(err) {
		t.Fatalf("want a permanent error for a wrong routing key, got %v", err)
	}
	e.mu.Lock()
	e.throttle = true
	e.mu.Unlock()
	if err := newOutput(t, srv.URL+"/v2/enqueue").Send(context.Background(), evs["readme_try_event"]); err == nil || delivery.IsPermanent(err) {
		t.Fatalf("want a transient error when throttled, got %v", err)
	}
}

func TestDownThenUpLosesNothing(t *testing.T) {
	deliverytest.DownThenUp(t, func(base string) delivery.Output { return newOutput(t, base+"/v2/enqueue") }, &endpoint{})
}

// TestMinimumPriority: pagerduty.minimumpriority keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newOutput(t, base+"/v2/enqueue") }, &endpoint{})
}

func TestRegions(t *testing.T) {
	c := defaults()
	c.RoutingKey, c.Region = "k", "eu"
	if _, err := New(c, outputs.Env{}); err != nil || c.url() != "https://events.eu.pagerduty.com/v2/enqueue" {
		t.Fatalf("eu: %s %v", c.url(), err)
	}
	c.Region = "asia"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "pagerduty.region") {
		t.Errorf("Validate() = %v", err)
	}
	c.Endpoint = "localhost:8080/v2/enqueue"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "pagerduty.endpoint") {
		t.Errorf("Validate() = %v", err)
	}
}
