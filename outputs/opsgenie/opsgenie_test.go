package opsgenie

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

func newOutput(t *testing.T, endpoint string) *falcopost.Output {
	t.Helper()
	return chattest.Output(t, defaults, New, func(c *Config) { c.APIKey, c.Endpoint = "ogkey", endpoint })
}

// TestPayloadGolden checks each alert against saker's golden file and against what
// falcosidekick sent (through a proxy, to the real Alert API URL): the same entity,
// description, priority and details, and the message (cut to Opsgenie's 130 characters).
func TestPayloadGolden(t *testing.T) {
	o := defaults()
	o.APIKey = "ogkey"
	chattest.Payloads(t, chattest.Golden{UUIDs: true, Variants: map[string]chattest.Build{
		"opsgenie-via-mitm-proxy": func(ev *event.Event) (any, error) { return Build(ev), nil },
	}, Compare: func(t *testing.T, c chattest.Case) {
		rec := goldens.Recorded(t, c.Variant, c.Name)
		if u, _ := o.URL("opsgenie", endpoints); u != "https://api.opsgenie.com/v2/alerts" || rec.Headers["Authorization"] != "GenieKey "+o.APIKey {
			t.Fatalf("URL %s, falcosidekick's headers %v", u, rec.Headers)
		}
		fsk, ours := c.Falcosidekick, c.Ours
		for _, k := range []string{"entity", "description", "priority"} {
			if ours[k] != fsk[k] {
				t.Errorf("%s = %v, falcosidekick sends %v", k, ours[k], fsk[k])
			}
		}
		if m := ours["message"].(string); !strings.HasPrefix(fsk["message"].(string), strings.TrimSuffix(m, "…")) || utf8.RuneCountInString(m) > maxMessage {
			t.Errorf("message %q, falcosidekick sends %q", m, fsk["message"])
		}
		od := ours["details"].(map[string]any)
		for k, v := range fsk["details"].(map[string]any) {
			if od[k] != v {
				t.Errorf("details[%s] = %v, falcosidekick sends %v", k, od[k], v)
			}
		}
		if ours["alias"] != "uuid-"+c.Name {
			t.Errorf("alias %v", ours["alias"])
		}
	}})
}

// endpoint is the Alert API as strict as Opsgenie: the GenieKey it knows, known fields only,
// a message of at most 130 characters, string details and a P1-P5 priority; it answers 202.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "GenieKey ogkey" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message": "Key format is not valid!", "took": 0.001, "requestId": "r"}`))
		return
	}
	var a Alert
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil || r.URL.Path != "/v2/alerts" || a.Message == "" ||
		utf8.RuneCountInString(a.Message) > maxMessage || !strings.Contains("P1 P2 P3 P4 P5", a.Priority) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(`{"message": "Request body is not processable.", "took": 0.001, "requestId": "r"}`))
		return
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"result": "Request will be processed", "took": 0.302, "requestId": "r"}`))
}

func TestSendToStrictEndpoint(t *testing.T) {
	srv := posttest.Server(t, endpoint{})
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		if err := newOutput(t, srv.URL+"/v2/alerts").Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	revoked := chattest.Output(t, defaults, New, func(c *Config) { c.APIKey, c.Endpoint = "REVOKEDKEY", srv.URL+"/v2/alerts" })
	if err := revoked.Send(context.Background(), evs["readme_try_event"]); err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "REVOKEDKEY") {
		t.Fatalf("want a permanent error without the key, got %v", err)
	}
}

// TestDelivery: alerts published while Opsgenie is unreachable all arrive once it is up,
// through the engine's retries, and opsgenie.minimumpriority keeps lower events out.
func TestDelivery(t *testing.T) {
	posttest.Delivery(t, func(t *testing.T, base string) delivery.Sender { return newOutput(t, base+"/v2/alerts") }, endpoint{})
}

func TestRegions(t *testing.T) {
	posttest.Regions(t, "opsgenie", endpoints, "https://api.eu.opsgenie.com/v2/alerts")
	chattest.Output(t, defaults, New, func(c *Config) { c.APIKey, c.Region = "k", "eu" })
	c := defaults()
	c.APIKey, c.Region = "k", "mars"
	posttest.Refused(t, c.Validate(), "opsgenie.region")
}
