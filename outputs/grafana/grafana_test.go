package grafana

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
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

func config(hostPort, key string, mod func(*Config)) *Config {
	c := defaults()
	c.HostPort, c.APIKey = hostPort, key
	if mod != nil {
		mod(c)
	}
	return c
}

func newOutput(t *testing.T, hostPort, key string, mod func(*Config)) *falcopost.Output {
	t.Helper()
	g, err := New(config(hostPort, key, mod), outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestPayloadGolden checks each annotation against saker's golden file and against what
// falcosidekick sent: the same scope, times, text and tags (as a set: falcosidekick's order
// of field tags was random; lists are JSON here).
func TestPayloadGolden(t *testing.T) {
	evs := goldens.Events(t, nil)
	for variant, mod := range map[string]func(*Config){
		"grafana":                 func(c *Config) { c.DashboardID, c.PanelID = 1, 2 },
		"grafana-allfieldsastags": func(c *Config) { c.AllFieldsAsTags = true },
	} {
		g := config("http://grafana.example/grafana", "gkey", mod)
		for _, name := range goldens.Names(evs) {
			t.Run(variant+"/"+name, func(t *testing.T) {
				body, err := chat.EncodeJSON(g.Build(evs[name]))
				if err != nil {
					t.Fatal(err)
				}
				goldens.Check(t, filepath.Join("testdata", variant, name+".json"), goldens.IndentJSON(t, body))
				fsk, ours := chattest.Falcosidekick(t, variant, name), chattest.Decode(t, body)
				for k, v := range fsk {
					if k != "tags" && ours[k] != v {
						t.Errorf("%s = %v, falcosidekick sends %v", k, ours[k], v)
					}
				}
				var tags []string
				for _, tag := range ours["tags"].([]any) {
					tags = append(tags, tag.(string))
				}
				for _, tag := range fsk["tags"].([]any) {
					if s := tag.(string); s != "<nil>" && !strings.HasPrefix(s, "[") && !slices.Contains(tags, s) { // null fields are not tags here
						t.Errorf("tag %q missing from %q", s, tags)
					}
				}
			})
		}
	}
}

// endpoint is the annotations API as strict as Grafana's: the bearer token, the known
// fields, a time; it answers {"message":"Annotation added","id":N}.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer gkey" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message":"invalid API key"}`))
		return
	}
	var a Annotation
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil || r.URL.Path != "/api/annotations" || a.Time == 0 {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"message":"bad request data"}`))
		return
	}
	_, _ = w.Write([]byte(`{"message":"Annotation added","id":1}`))
}

func TestSendToStrictEndpoint(t *testing.T) {
	srv := httptest.NewServer(endpoint{})
	defer srv.Close()
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		if err := newOutput(t, srv.URL, "gkey", func(c *Config) { c.AllFieldsAsTags = true }).Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := newOutput(t, srv.URL, "EXPIREDKEY", nil).Send(context.Background(), evs["readme_try_event"]); err == nil ||
		!delivery.IsPermanent(err) || strings.Contains(err.Error(), "EXPIREDKEY") {
		t.Fatalf("want a permanent error without the key, got %v", err)
	}
}

func TestDownThenUpLosesNothing(t *testing.T) {
	deliverytest.DownThenUp(t, func(base string) delivery.Output { return newOutput(t, base, "gkey", nil) }, endpoint{})
}

// TestMinimumPriority: grafana.minimumpriority keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newOutput(t, base, "gkey", nil) }, endpoint{})
}

func TestValidate(t *testing.T) {
	for key, c := range map[string]*Config{
		"grafana.hostport": {HostPort: "grafana:3000", APIKey: "SECRET"},
		"grafana.apikey":   {HostPort: "http://grafana:3000"},
	} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Validate() = %v, want an error naming %s", err, key)
		}
	}
}
