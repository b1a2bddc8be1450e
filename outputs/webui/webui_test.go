package webui

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

// newOutput has the settings of falcosidekick's recordings (WEBUI_URL=.../webui/api/v1/),
// with slack enabled besides.
func newOutput(t *testing.T, base string) delivery.Sender {
	t.Helper()
	c := defaults()
	c.URL = base + "/webui/api/v1/"
	o, err := New(c, outputs.Env{Outputs: []string{"slack", "webui"}})
	return posttest.Must(t, o, err)
}

// endpoint is falcosidekick-ui's POST /api/v1/ as strict as its handler: a JSON body of
// exactly {event, outputs} (400 otherwise), the event a Falco event; it answers 200.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/webui/api/v1/" {
		http.NotFound(w, r)
		return
	}
	var p struct {
		Event   json.RawMessage `json:"event"`
		Outputs []string        `json:"outputs"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		http.Error(w, `{"error":"`+err.Error()+`"}`, http.StatusBadRequest)
		return
	}
	if _, err := posttest.DecodeEvent(bytes.NewReader(p.Event)); err != nil || len(p.Outputs) == 0 {
		http.Error(w, `{"error":"bad event"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"message":"ok"}`))
}

// TestPayloadGolden: the event as falcosidekick wrapped it, to the same path; the outputs
// list names saker's enabled outputs in saker's spelling (falcosidekick: "WebUI").
func TestPayloadGolden(t *testing.T) {
	posttest.Check(t, posttest.Golden{Variant: "webui", Output: newOutput, Endpoint: endpoint{}, Headers: []string{"Content-Type"},
		Body: func(t testing.TB, b []byte) any {
			var p map[string]any
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			if err := dec.Decode(&p); err != nil {
				t.Fatal(err)
			}
			delete(p, "outputs") // compared below
			return p
		},
		More: func(t *testing.T, c posttest.Case) {
			var p struct{ Outputs []string }
			if err := json.Unmarshal(c.Ours.Body, &p); err != nil || !slices.Equal(p.Outputs, []string{"slack", "webui"}) {
				t.Errorf("outputs = %v (%v), want the enabled outputs", p.Outputs, err)
			}
		}})
}

// TestDelivery: nothing is lost while the service is down, and webui.minimumpriority keeps lower
// events out.
func TestDelivery(t *testing.T) { posttest.Delivery(t, newOutput, endpoint{}) }

func TestValidate(t *testing.T) {
	c := Config{URL: "falcosidekick-ui:2802/api/v1/"}
	posttest.Refused(t, c.Validate(), "webui.url")
}
