package webex

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

func newOutput(t *testing.T, url string) *falcopost.Output {
	t.Helper()
	c := defaults()
	c.WebhookURL = url
	w, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return w
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
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		t.Run(name, func(t *testing.T) {
			body, err := chat.EncodeJSON(Build(evs[name]))
			if err != nil {
				t.Fatal(err)
			}
			goldens.Check(t, filepath.Join("testdata", name+".json"), goldens.IndentJSON(t, body))
			ours := chattest.Decode(t, body)["markdown"].(string)
			fsk := chattest.Falcosidekick(t, "webex", name)["markdown"].(string)
			for _, line := range strings.Split(fsk, "\n") {
				line = strings.TrimSpace(line)
				switch {
				case line == "" || strings.HasPrefix(line, "* Source:"):
					continue // falcosidekick padded the source with spaces
				case strings.HasSuffix(line, ": <no value>"):
					line = strings.TrimSuffix(line, "<no value>") + "null"
				case strings.HasSuffix(line, "]") && strings.Contains(line, ": ["):
					// a list: Go's [a b] there, JSON's ["a","b"] here, as in every chat output
					line = line[:strings.Index(line, ": [")+3]
				}
				if !strings.Contains(ours, line) {
					t.Errorf("falcosidekick's line %q is missing from:\n%s", line, ours)
				}
			}
		})
	}
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
	srv := httptest.NewServer(endpoint{})
	defer srv.Close()
	ev := goldens.Events(t, nil)["many_fields"]
	if err := newOutput(t, srv.URL+"/v1/webhooks/incoming/HOOKID").Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	err := newOutput(t, srv.URL+"/v1/webhooks/incoming/DELETEDHOOK").Send(context.Background(), ev)
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "DELETEDHOOK") {
		t.Fatalf("want a permanent error without the webhook id, got %v", err)
	}
}

func TestDownThenUpLosesNothing(t *testing.T) {
	deliverytest.DownThenUp(t, func(base string) delivery.Output { return newOutput(t, base+"/v1/webhooks/incoming/HOOKID") }, endpoint{})
}

// TestMinimumPriority: webex.minimumpriority keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newOutput(t, base+"/v1/webhooks/incoming/HOOKID") }, endpoint{})
}

func TestValidate(t *testing.T) {
	c := defaults()
	c.WebhookURL = "webexapis.com/v1/webhooks/incoming/SECRETID"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "webex.webhookurl") || strings.Contains(err.Error(), "SECRETID") {
		t.Errorf("Validate() = %v, want an error naming webex.webhookurl without the id", err)
	}
}
