package zincsearch

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

func newOutput(t *testing.T, hostPort, password string) *falcopost.Output {
	t.Helper()
	z, err := New(&Config{HostPort: hostPort, Index: "falco", Username: "u", Password: password, CheckCert: true}, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// TestPayloadGolden: each document is the event's Falco JSON, posted to falcosidekick's
// path with the same basic authentication.
func TestPayloadGolden(t *testing.T) {
	evs := goldens.Events(t, func(n string) string { return "uuid-" + n })
	c := &Config{HostPort: "http://127.0.0.1:1/zincsearch", Index: "falco", Username: "u", Password: "p"}
	auth := falcopost.BasicAuth(nil, c.Username, c.Password)["Authorization"]
	for _, name := range goldens.Names(evs) {
		rec := goldens.Recorded(t, "zincsearch", name)
		if "http://127.0.0.1:1"+rec.Path != c.url() || rec.Headers["Authorization"] != auth {
			t.Fatalf("URL %s, authorization %s; falcosidekick: %s %v", c.url(), auth, rec.Path, rec.Headers)
		}
		goldens.SameEventJSON(t, "zincsearch", name, evs[name].JSON())
	}
}

// endpoint is the document API as strict as ZincSearch's: basic authentication, one JSON
// object; it answers {"id": ...}.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
		http.Error(w, `{"auth":"Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	var doc map[string]any
	if r.URL.Path != "/api/falco/_doc" || json.NewDecoder(r.Body).Decode(&doc) != nil {
		http.Error(w, `{"error":"invalid document"}`, http.StatusBadRequest)
		return
	}
	_, _ = w.Write([]byte(`{"id":"2Q5xYzTQ"}`))
}

func TestSendToStrictEndpoint(t *testing.T) {
	srv := httptest.NewServer(endpoint{})
	defer srv.Close()
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		if err := newOutput(t, srv.URL, "p").Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := newOutput(t, srv.URL, "WRONGPASSWORD").Send(context.Background(), evs["readme_try_event"]); err == nil ||
		!delivery.IsPermanent(err) || strings.Contains(err.Error(), "WRONGPASSWORD") {
		t.Fatalf("want a permanent error without the password, got %v", err)
	}
}

func TestDownThenUpLosesNothing(t *testing.T) {
	deliverytest.DownThenUp(t, func(base string) delivery.Output { return newOutput(t, base, "p") }, endpoint{})
}

// TestMinimumPriority: zincsearch.minimumpriority keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newOutput(t, base, "p") }, endpoint{})
}

func TestValidate(t *testing.T) {
	for key, c := range map[string]*Config{
		"zincsearch.hostport": {HostPort: "zinc:4080", Index: "falco"},
		"zincsearch.index":    {HostPort: "http://zinc:4080", Index: ""},
	} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v, want an error naming %s", err, key)
		}
	}
}
