package grafanaoncall

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

const hookPath = "/integrations/v1/formatted_webhook/TOKEN/"

func newOutput(t *testing.T, url string) *falcopost.Output {
	t.Helper()
	c := defaults()
	c.WebhookURL = url
	c.CustomHeaders = map[string]string{"X-Team": "sec"}
	o, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestPayloadGolden checks each alert against saker's golden file and against what
// falcosidekick sent: the same state, title and message, the uid being the event's uuid.
func TestPayloadGolden(t *testing.T) {
	evs := goldens.Events(t, func(n string) string { return "uuid-" + n })
	for _, name := range goldens.Names(evs) {
		t.Run(name, func(t *testing.T) {
			body, err := chat.EncodeJSON(Build(evs[name]))
			if err != nil {
				t.Fatal(err)
			}
			goldens.Check(t, filepath.Join("testdata", name+".json"), goldens.IndentJSON(t, body))
			fsk, ours := chattest.Falcosidekick(t, "grafanaoncall", name), chattest.Decode(t, body)
			for k, v := range fsk {
				if k != "alert_uid" && ours[k] != v {
					t.Errorf("%s = %v, falcosidekick sends %v", k, ours[k], v)
				}
			}
			if ours["alert_uid"] != "uuid-"+name {
				t.Errorf("alert_uid %v", ours["alert_uid"])
			}
		})
	}
}

// endpoint is a formatted-webhook integration as strict as OnCall: its token in the path, a
// JSON object with a title and a state OnCall knows; it answers 200 "Ok.".
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != hookPath || r.Header.Get("X-Team") != "sec" {
		http.Error(w, `{"detail": "Not found."}`, http.StatusNotFound)
		return
	}
	var a map[string]any
	if err := json.NewDecoder(r.Body).Decode(&a); err != nil || a["title"] == "" || (a["state"] != "alerting" && a["state"] != "ok") {
		http.Error(w, `{"detail": "Invalid payload"}`, http.StatusBadRequest)
		return
	}
	_, _ = w.Write([]byte("Ok."))
}

func TestSendToStrictEndpoint(t *testing.T) {
	srv := httptest.NewServer(endpoint{})
	defer srv.Close()
	ev := goldens.Events(t, nil)["k8s_audit_critical"]
	if err := newOutput(t, srv.URL+hookPath).Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	err := newOutput(t, srv.URL+"/integrations/v1/formatted_webhook/OLDTOKEN/").Send(context.Background(), ev)
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "OLDTOKEN") {
		t.Fatalf("want a permanent error without the token, got %v", err)
	}
}

func TestDownThenUpLosesNothing(t *testing.T) {
	deliverytest.DownThenUp(t, func(base string) delivery.Output { return newOutput(t, base+hookPath) }, endpoint{})
}

// TestMinimumPriority: grafanaoncall.minimumpriority keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newOutput(t, base+hookPath) }, endpoint{})
}

func TestValidate(t *testing.T) {
	for key, mod := range map[string]func(*Config){
		"grafanaoncall.webhookurl":    func(c *Config) { c.WebhookURL = "oncall.example/integrations/v1/formatted_webhook/SECRETTOKEN/" },
		"grafanaoncall.customheaders": func(c *Config) { c.CustomHeaders = map[string]string{"Bad Header": "SECRETVALUE"} },
	} {
		c := defaults()
		c.WebhookURL = "https://oncall.example/integrations/v1/formatted_webhook/SECRETTOKEN/"
		mod(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Validate() = %v, want an error naming %s without secrets", err, key)
		}
	}
}
