package tekton

import (
	"net/http"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

// newOutput has the settings of falcosidekick's recordings (TEKTON_EVENTLISTENER=.../tekton).
func newOutput(t *testing.T, base string) delivery.Sender {
	t.Helper()
	c := defaults()
	c.EventListener = base + "/tekton"
	o, err := New(c, outputs.Env{})
	return posttest.Must(t, o, err)
}

// endpoint is a Tekton Triggers EventListener as strict as one with a CEL interceptor over
// the Falco fields: a POSTed JSON event; it answers 202 with the event id, as the sink does.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/tekton" {
		http.NotFound(w, r)
		return
	}
	ev, err := posttest.DecodeEvent(r.Body)
	if err != nil {
		http.Error(w, `{"error":"failed to parse event body"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"eventListener":"falco-listener","namespace":"tekton","eventListenerUID":"el-1","eventID":"` + ev.UUID + `"}`))
}

// TestPayloadGolden: the Falco JSON to the same path as falcosidekick.
func TestPayloadGolden(t *testing.T) {
	posttest.Check(t, posttest.Golden{Variant: "tekton", Output: newOutput, Endpoint: endpoint{}, Headers: []string{"Content-Type"}})
}

// TestDelivery: nothing is lost while the service is down, and tekton.minimumpriority keeps lower
// events out.
func TestDelivery(t *testing.T) { posttest.Delivery(t, newOutput, endpoint{}) }

func TestValidate(t *testing.T) {
	c := Config{EventListener: "el-falco:8080/SECRET"}
	posttest.Refused(t, c.Validate(), "tekton.eventlistener")
}
