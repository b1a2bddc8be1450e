package pagerduty

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

func newOutput(t *testing.T, endpoint string) *falcopost.Output {
	t.Helper()
	return chattest.Output(t, defaults, New, func(c *Config) { c.RoutingKey, c.Endpoint = "pdkey", endpoint })
}

// TestPayloadGolden checks each trigger against saker's golden file and against what
// falcosidekick sent (through a proxy, to the real Events API URL): the same keys and
// values, except the severity (falcosidekick sent "critical" for every priority) and the
// timestamp (it dropped the fraction of a second).
func TestPayloadGolden(t *testing.T) {
	p := defaults()
	p.RoutingKey = "pdkey"
	chattest.Payloads(t, chattest.Golden{UUIDs: true, Variants: map[string]chattest.Build{
		"pagerduty-via-mitm-proxy": func(ev *event.Event) (any, error) { return p.Build(ev), nil },
	}, Compare: func(t *testing.T, c chattest.Case) {
		rec := goldens.Recorded(t, c.Variant, c.Name)
		if u, _ := p.URL("pagerduty", endpoints); u != "https://events.pagerduty.com/v2/enqueue" || rec.Method != http.MethodPost {
			t.Fatalf("URL %s", u)
		}
		fsk, ours := c.Falcosidekick, c.Ours
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
		if op["severity"] != Severities[c.Event.Priority] {
			t.Errorf("severity %v for %s", op["severity"], c.Event.Priority)
		}
		if ts, err := time.Parse(time.RFC3339Nano, op["timestamp"].(string)); err != nil || !ts.Equal(c.Event.Time) {
			t.Errorf("timestamp %v, event time %v", op["timestamp"], c.Event.Time)
		}
		od := op["custom_details"].(map[string]any)
		for k, v := range fp["custom_details"].(map[string]any) {
			if b, _ := json.Marshal(od[k]); string(b) != mustJSON(v) {
				t.Errorf("custom_details[%s] = %v, falcosidekick sends %v", k, od[k], v)
			}
		}
		if ours["dedup_key"] != "uuid-"+c.Name {
			t.Errorf("dedup_key %v", ours["dedup_key"])
		}
	}})
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
	srv := posttest.Server(t, e)
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		if err := newOutput(t, srv.URL+"/v2/enqueue").Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	wrong := chattest.Output(t, defaults, New, func(c *Config) { c.RoutingKey, c.Endpoint = "WRONGKEY", srv.URL+"/v2/enqueue" })
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

// TestDelivery: triggers published while PagerDuty is unreachable all arrive once it is up,
// through the engine's retries, and pagerduty.minimumpriority keeps lower events out.
func TestDelivery(t *testing.T) {
	posttest.Delivery(t, func(t *testing.T, base string) delivery.Sender { return newOutput(t, base+"/v2/enqueue") }, &endpoint{})
}

func TestRegions(t *testing.T) {
	posttest.Regions(t, "pagerduty", endpoints, "https://events.eu.pagerduty.com/v2/enqueue")
	chattest.Output(t, defaults, New, func(c *Config) { c.RoutingKey, c.Region = "k", "eu" })
	c := defaults()
	c.RoutingKey, c.Region = "k", "asia"
	posttest.Refused(t, c.Validate(), "pagerduty.region")
}
