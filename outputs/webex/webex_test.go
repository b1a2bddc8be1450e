package webex

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

func newOutput(t *testing.T, url string) *falcopost.Output {
	t.Helper()
	return chattest.Output(t, defaults, New, func(c *Config) { c.WebhookURL = url })
}

// TestSuppressedLineGolden: the first alert sent after a dedup window says, under its
// output line, how many similar alerts the window suppressed.
func TestSuppressedLineGolden(t *testing.T) {
	m := Build(chattest.SuppressedEvent(t))
	chattest.CheckSuppressed(t, "", m.Markdown, m)
}

// TestPayloadGolden checks each message against saker's golden file and against what
// falcosidekick sent: the same heading and output line, and every tag and field line it had
// (but null printed as null, not "<no value>").
func TestPayloadGolden(t *testing.T) {
	chattest.Payloads(t, chattest.Golden{Variants: map[string]chattest.Build{
		"webex": func(ev *event.Event) (any, error) { return Build(ev), nil },
	}, Compare: func(t *testing.T, c chattest.Case) {
		// falcosidekick padded the source with spaces.
		chattest.SameLines(t, c.Falcosidekick["markdown"].(string), c.Ours["markdown"].(string),
			func(line string) bool { return strings.HasPrefix(line, "* Source:") })
	}})
}

// TestCutToWebexLimit: an event larger than a Webex message is cut, on a character
// boundary, and says so, instead of being refused.
func TestCutToWebexLimit(t *testing.T) {
	ev := &event.Event{Output: strings.Repeat("é", 6000), Priority: event.Error, Rule: "r", Time: time.Now(),
		OutputFields: map[string]any{"a": strings.Repeat("ü", 3000)}}
	m := Build(ev).Markdown
	if len(m) > maxMessageBytes || !strings.HasSuffix(m, cutNote) || !strings.HasPrefix(m, "# Falco Rule 'r'") {
		t.Fatalf("%d bytes, ends %q", len(m), m[len(m)-60:])
	}
}

// endpoint is a Webex incoming webhook as strict as Webex: a JSON body with markdown (or
// text) only, within the size limit; it answers 204.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/webhooks/incoming/HOOKID" {
		http.Error(w, `{"message": "The requested resource could not be found.", "trackingId": "T"}`, http.StatusNotFound)
		return
	}
	var m struct {
		Markdown string `json:"markdown"`
		Text     string `json:"text"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || m.Markdown+m.Text == "" || len(m.Markdown) > maxMessageBytes {
		http.Error(w, `{"message": "Message content is empty or too long.", "trackingId": "T"}`, http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestSendToStrictEndpoint(t *testing.T) {
	srv := posttest.Server(t, endpoint{})
	ev := goldens.Events(t, nil)["many_fields"]
	if err := newOutput(t, srv.URL+"/v1/webhooks/incoming/HOOKID").Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	err := newOutput(t, srv.URL+"/v1/webhooks/incoming/DELETEDHOOK").Send(context.Background(), ev)
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "DELETEDHOOK") {
		t.Fatalf("want a permanent error without the webhook id, got %v", err)
	}
}

// TestDelivery: messages published while Webex is unreachable all arrive once it is up,
// through the engine's retries, and webex.minimumpriority keeps lower events out.
func TestDelivery(t *testing.T) {
	posttest.Delivery(t, func(t *testing.T, base string) delivery.Sender {
		return newOutput(t, base+"/v1/webhooks/incoming/HOOKID")
	}, endpoint{})
}

func TestValidate(t *testing.T) {
	c := defaults()
	c.WebhookURL = "webexapis.com/v1/webhooks/incoming/SECRETID"
	posttest.Refused(t, c.Validate(), "webex.webhookurl")
}
