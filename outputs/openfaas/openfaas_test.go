package openfaas

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

// newOutput has the settings of falcosidekick's recordings (OPENFAAS_FUNCTIONNAME=falco-fn,
// the rest default). With a base URL the gateway is that host (gatewaynamespace empty);
// without, it is the in-cluster name, gateway.openfaas:8080.
func newOutput(t *testing.T, base string) delivery.Sender {
	t.Helper()
	return build(t, base, "falco-fn")
}

func build(t *testing.T, base, fn string) delivery.Sender {
	t.Helper()
	c := defaults()
	c.FunctionName = fn
	if base != "" {
		c.GatewayService, c.GatewayPort = posttest.HostPort(t, base)
		c.GatewayNamespace = ""
	}
	o, err := New(c, outputs.Env{})
	return posttest.Must(t, o, err)
}

// endpoint is the OpenFaaS gateway with one function deployed, falco-fn in openfaas-fn:
// POST /function/falco-fn.openfaas-fn reaches it (a function that reads a Falco event),
// other functions are not found.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fn, ok := strings.CutPrefix(r.URL.Path, "/function/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if fn != "falco-fn.openfaas-fn" {
		http.Error(w, "Cannot find service: "+fn+".", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if _, err := posttest.DecodeEvent(r.Body); err != nil {
		http.Error(w, "function: "+err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write([]byte("handled"))
}

// TestPayloadGolden: with the default keys, the Falco JSON to the in-cluster gateway name
// and function path falcosidekick used (recorded, as here, through an HTTP proxy).
func TestPayloadGolden(t *testing.T) {
	posttest.Check(t, posttest.Golden{Variant: "openfaas-via-http-proxy", Output: newOutput, Endpoint: endpoint{}, Proxy: true,
		Headers: []string{"Host", "Content-Type"}})
}

// TestSendToStrictEndpoint: an unknown function is a permanent error.
func TestSendToStrictEndpoint(t *testing.T) {
	srv := posttest.Server(t, endpoint{})
	err := build(t, srv.URL, "nosuchfn").Send(context.Background(), goldens.Events(t, nil)["many_fields"])
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "Cannot find service") {
		t.Fatalf("want a permanent not-found error, got %v", err)
	}
}

// TestDelivery: nothing is lost while the service is down, and openfaas.minimumpriority keeps lower
// events out.
func TestDelivery(t *testing.T) { posttest.Delivery(t, newOutput, endpoint{}) }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Kubeconfig = "~/.kube/config" }, "openfaas.kubeconfig is not supported"},
		{func(c *Config) { c.GatewayPort = 0 }, "openfaas.gatewayport must be a port"},
		{func(c *Config) { c.GatewayService = "" }, "openfaas.gatewayservice must not be empty"},
	} {
		c := defaults()
		c.FunctionName = "fn"
		tc.edit(c)
		posttest.Refused(t, c.Validate(), tc.want)
	}
	c := defaults()
	c.FunctionName = "fn"
	if got := c.URL(); got != "http://gateway.openfaas:8080/function/fn.openfaas-fn" {
		t.Errorf("URL() = %s", got)
	}
}
