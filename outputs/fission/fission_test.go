package fission

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

// newOutput has the settings of falcosidekick's recordings (FISSION_FUNCTION=falco-fn, the
// rest default). With a base URL the router is that host (routernamespace empty); without,
// it is the in-cluster name, router.fission.svc.cluster.local:80.
func newOutput(t *testing.T, base string) delivery.Sender {
	t.Helper()
	return build(t, base, "falco-fn")
}

func build(t *testing.T, base, fn string) delivery.Sender {
	t.Helper()
	c := defaults()
	c.Function = fn
	if base != "" {
		c.RouterService, c.RouterPort = posttest.HostPort(t, base)
		c.RouterNamespace = ""
	}
	o, err := New(c, outputs.Env{})
	return posttest.Must(t, o, err)
}

// endpoint is the Fission router with one function, falco-fn, behind its HTTP trigger
// /fission-function/falco-fn (404 for others, as the router answers an unknown route); the
// function reads a Falco event.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/fission-function/falco-fn" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Event-Id") == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if _, err := posttest.DecodeEvent(r.Body); err != nil {
		http.Error(w, "function: "+err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write([]byte("handled"))
}

// TestPayloadGolden: with the default keys, the Falco JSON to the in-cluster router name
// and function path falcosidekick used (recorded, as here, through an HTTP proxy), with an
// Event-Id: the event's UUID.
func TestPayloadGolden(t *testing.T) {
	posttest.Check(t, posttest.Golden{Variant: "fission-via-http-proxy", Output: newOutput, Endpoint: endpoint{}, Proxy: true,
		Headers: []string{"Host", "Content-Type", "Event-Id"},
		More: func(t *testing.T, c posttest.Case) {
			if id := c.Ours.Header.Get("Event-Id"); id != "uuid-"+c.Event {
				t.Errorf("Event-Id = %q, want the event's UUID", id)
			}
		}})
}

// TestSendToStrictEndpoint: an unknown function is a permanent error.
func TestSendToStrictEndpoint(t *testing.T) {
	srv := posttest.Server(t, endpoint{})
	err := build(t, srv.URL, "nosuchfn").Send(context.Background(), goldens.Events(t, nil)["many_fields"])
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("want a permanent 404, got %v", err)
	}
}

// TestDelivery: nothing is lost while the service is down, and fission.minimumpriority keeps lower
// events out.
func TestDelivery(t *testing.T) { posttest.Delivery(t, newOutput, endpoint{}) }

func TestValidate(t *testing.T) {
	c := defaults()
	c.Function, c.RouterPort = "fn", 70000
	posttest.Refused(t, c.Validate(), "fission.routerport must be a port")
	c.RouterPort, c.RouterService = 80, ""
	posttest.Refused(t, c.Validate(), "fission.routerservice must not be empty")
	c = defaults()
	c.Function = "fn"
	if got := c.URL(); got != "http://router.fission.svc.cluster.local:80/fission-function/fn" {
		t.Errorf("URL() = %s", got)
	}
}
