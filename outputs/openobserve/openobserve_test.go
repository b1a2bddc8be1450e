package openobserve

import (
	"context"
	"encoding/json"
	"io"
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
	c := defaults()
	c.HostPort, c.Username, c.Password = hostPort, "u", password
	o, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestPayloadGolden: each request carries the event's Falco JSON to falcosidekick's path,
// with the same basic authentication.
func TestPayloadGolden(t *testing.T) {
	evs := goldens.Events(t, func(n string) string { return "uuid-" + n })
	c := defaults()
	c.HostPort, c.Username, c.Password = "http://127.0.0.1:1/openobserve", "u", "p"
	auth := falcopost.BasicAuth(nil, c.Username, c.Password)["Authorization"]
	for _, name := range goldens.Names(evs) {
		rec := goldens.Recorded(t, "openobserve", name)
		if "http://127.0.0.1:1"+rec.Path != c.url() || rec.Headers["Authorization"] != auth {
			t.Fatalf("URL %s, authorization %s; falcosidekick: %s %v", c.url(), auth, rec.Path, rec.Headers)
		}
		goldens.SameEventJSON(t, "openobserve", name, evs[name].JSON())
	}
}

// endpoint is the _multi API as strict as OpenObserve's: basic authentication, NDJSON
// documents; a document without "rule" is refused inside a 200, as OpenObserve reports
// schema errors.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
		http.Error(w, `{"code":401,"message":"Unauthorized Access"}`, http.StatusUnauthorized)
		return
	}
	if r.URL.Path != "/api/default/falco/_multi" {
		http.Error(w, `{"code":404,"message":"not found"}`, http.StatusNotFound)
		return
	}
	b, _ := io.ReadAll(r.Body)
	ok, failed := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var doc map[string]any
		if json.Unmarshal([]byte(line), &doc) != nil || doc["rule"] == "" || doc["rule"] == nil {
			failed++
			continue
		}
		ok++
	}
	msg := ""
	if failed > 0 {
		msg = `,"error":"invalid document"`
	}
	_, _ = w.Write([]byte(`{"code":200,"status":[{"name":"falco","successful":` + itoa(ok) + `,"failed":` + itoa(failed) + msg + `}]}`))
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

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
	bad := evs["readme_try_event"].Clone()
	bad.Rule = ""
	if err := newOutput(t, srv.URL, "p").Send(context.Background(), bad); err == nil || !delivery.IsPermanent(err) ||
		!strings.Contains(err.Error(), "refused the event: invalid document") {
		t.Fatalf("want the refusal reported inside a 200 as a permanent error, got %v", err)
	}
}

func TestDownThenUpLosesNothing(t *testing.T) {
	deliverytest.DownThenUp(t, func(base string) delivery.Output { return newOutput(t, base, "p") }, endpoint{})
}

// TestMinimumPriority: openobserve.minimumpriority keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newOutput(t, base, "p") }, endpoint{})
}

func TestValidate(t *testing.T) {
	for key, c := range map[string]*Config{
		"openobserve.hostport":         {HostPort: "o2:5080", OrganizationName: "default", StreamName: "falco"},
		"openobserve.streamname":       {HostPort: "http://o2:5080", OrganizationName: "default", StreamName: "a b"},
		"openobserve.organizationname": {HostPort: "http://o2:5080", StreamName: "falco"},
	} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v, want an error naming %s", err, key)
		}
	}
}
