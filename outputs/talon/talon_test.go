package talon

import (
	"context"
	"net/http"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

// newOutput has the settings of falcosidekick's recordings (TALON_ADDRESS=.../talon).
func newOutput(t *testing.T, base string) delivery.Sender {
	t.Helper()
	c := defaults()
	c.Address = base + "/talon"
	o, err := New(c, outputs.Env{})
	return posttest.Must(t, o, err)
}

// endpoint is Falco Talon's event handler as strict as Talon: POST only, a Falco event
// (its decoder's fields, no others here), 400 "Please send a valid request body" otherwise;
// it answers 200.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/talon" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "Please send with POST http method", http.StatusBadRequest)
		return
	}
	if _, err := posttest.DecodeEvent(r.Body); err != nil {
		http.Error(w, "Please send a valid request body", http.StatusBadRequest)
		return
	}
}

// TestPayloadGolden: the Falco JSON to the same path as falcosidekick.
func TestPayloadGolden(t *testing.T) {
	posttest.Check(t, posttest.Golden{Variant: "talon", Output: newOutput, Endpoint: endpoint{}, Headers: []string{"Content-Type"}})
}

// TestSendToStrictEndpoint: Talon's 400 for a body it cannot read is permanent.
func TestSendToStrictEndpoint(t *testing.T) {
	srv := posttest.Server(t, endpoint{})
	if err := newOutput(t, srv.URL).Send(context.Background(), goldens.Events(t, nil)["many_fields"]); err != nil {
		t.Fatal(err)
	}
	c := defaults()
	c.Address = srv.URL + "/elsewhere"
	o, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Send(context.Background(), goldens.Events(t, nil)["many_fields"]); err == nil || !delivery.IsPermanent(err) {
		t.Fatalf("want a permanent error, got %v", err)
	}
}

// TestDelivery: nothing is lost while the service is down, and talon.minimumpriority keeps lower
// events out.
func TestDelivery(t *testing.T) { posttest.Delivery(t, newOutput, endpoint{}) }

func TestValidate(t *testing.T) {
	c := Config{Address: "falco-talon:2803/SECRET"}
	posttest.Refused(t, c.Validate(), "talon.address")
}
