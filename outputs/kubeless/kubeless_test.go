package kubeless

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

// recorded is the configuration of falcosidekick's recordings: KUBELESS_FUNCTION=falco-fn,
// KUBELESS_NAMESPACE=kubeless, the rest default.
func recorded() *Config {
	c := defaults()
	c.Function, c.Namespace = "falco-fn", "kubeless"
	return c
}

// newOutput calls the function at its in-cluster name, or, with a base URL, at that
// address (a test server standing in for the service).
func newOutput(t *testing.T, base string) delivery.Sender {
	t.Helper()
	c := recorded()
	if base == "" {
		o, err := New(c, outputs.Env{})
		return posttest.Must(t, o, err)
	}
	o, err := direct(c, base+"/", outputs.Env{})
	return posttest.Must(t, o, err)
}

// function is the Kubeless function falco-fn of namespace kubeless, served on its port at
// "/" as the Kubeless runtimes do: it reads the Falco event and the event headers the
// Kubeless runtime passes to the function (event-id, event-type, event-namespace).
type function struct{}

func (function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, status, msg := accept(r); status != http.StatusOK {
		http.Error(w, msg, status)
		return
	}
	_, _ = w.Write([]byte("handled"))
}

// accept checks a call as the function's runtime does: the event or why it was refused.
func accept(r *http.Request) (*event.Event, int, string) {
	switch {
	case r.URL.Path != "/":
		return nil, http.StatusNotFound, "404 page not found"
	case r.Method != http.MethodPost:
		return nil, http.StatusMethodNotAllowed, "method not allowed"
	case r.Header.Get("Event-Id") == "" || r.Header.Get("Event-Type") != "falco" || r.Header.Get("Event-Namespace") != "kubeless":
		return nil, http.StatusBadRequest, "missing or wrong event headers"
	}
	ev, err := posttest.DecodeEvent(r.Body)
	if err != nil {
		return nil, http.StatusInternalServerError, "function: " + err.Error()
	}
	return ev, http.StatusOK, ""
}

// TestPayloadGolden: the Falco JSON to the function's in-cluster service name with the
// event headers falcosidekick sent (recorded, as here, through an HTTP proxy); Event-Id is
// the event's UUID.
func TestPayloadGolden(t *testing.T) {
	posttest.Check(t, posttest.Golden{Variant: "kubeless-via-http-proxy", Output: newOutput, Endpoint: function{}, Proxy: true,
		Headers: []string{"Host", "Content-Type", "Event-Id", "Event-Type", "Event-Namespace"},
		More: func(t *testing.T, c posttest.Case) {
			if id := c.Ours.Header.Get("Event-Id"); id != "uuid-"+c.Event {
				t.Errorf("Event-Id = %q, want the event's UUID", id)
			}
		}})
}

// TestSendToStrictEndpoint: a function that refuses the event is a permanent error.
func TestSendToStrictEndpoint(t *testing.T) {
	srv := posttest.Server(t, function{})
	c := recorded()
	c.Namespace = "other"
	o, err := direct(c, srv.URL+"/", outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	err = o.Send(context.Background(), goldens.Events(t, nil)["many_fields"])
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "400") {
		t.Fatalf("want a permanent 400, got %v", err)
	}
}

// TestDelivery: nothing is lost while the function is down, and kubeless.minimumpriority
// keeps lower events out.
func TestDelivery(t *testing.T) { posttest.Delivery(t, newOutput, function{}) }

func TestValidate(t *testing.T) {
	c := recorded()
	c.Namespace = ""
	posttest.Refused(t, c.Validate(), "kubeless.namespace must be set")
	c = recorded()
	c.Port = 0
	posttest.Refused(t, c.Validate(), "kubeless.port must be a port")
	c = recorded()
	if got := c.URL(); got != "http://falco-fn.kubeless.svc.cluster.local:8080/" {
		t.Errorf("URL() = %s", got)
	}
	if got := c.ProxyPath(); got != "/api/v1/namespaces/kubeless/services/falco-fn:8080/proxy/" {
		t.Errorf("ProxyPath() = %s", got)
	}
	c.Kubeconfig = t.TempDir() + "/missing"
	if _, err := New(c, outputs.Env{}); err == nil || !strings.Contains(err.Error(), "kubeless.kubeconfig") {
		t.Errorf("New with a missing kubeconfig: %v", err)
	}
}
