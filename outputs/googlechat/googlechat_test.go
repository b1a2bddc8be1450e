package googlechat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

func newOutput(t *testing.T, url string, mod func(*Config)) *GoogleChat {
	t.Helper()
	return chattest.Output(t, defaults, New, func(c *Config) { c.WebhookURL = url }, mod)
}

// variants mirror falcosidekick's recorded settings.
func variants(t *testing.T) map[string]chattest.Build {
	return chattest.Variants(map[string]func(*Config){
		"googlechat":               nil,
		"googlechat-messageformat": func(c *Config) { c.MessageFormat = chattest.MessageFormat },
		"googlechat-text":          func(c *Config) { c.OutputFormat = FormatText },
	}, func(mod func(*Config)) chattest.Build {
		g := newOutput(t, "https://chat.example/v1/spaces/S/messages?key=K&token=T", mod)
		return func(ev *event.Event) (any, error) { return g.Build(ev) }
	})
}

// TestSuppressedLineGolden: the first alert sent after a dedup window says, in the text
// line of every format, how many similar alerts the window suppressed.
func TestSuppressedLineGolden(t *testing.T) {
	chattest.Suppressed(t, variants(t), func(m any) string { return m.(Message).Text })
}

// TestPayloadGolden checks each message against saker's golden file and against what
// falcosidekick sent for the same event and settings: the same card, every widget it had
// with the same value and in its order, the same text line where it sent one.
func TestPayloadGolden(t *testing.T) {
	chattest.Payloads(t, chattest.Golden{Variants: variants(t), Compare: func(t *testing.T, c chattest.Case) {
		fsk, ours := c.Falcosidekick, c.Ours
		if text, ok := fsk["text"]; ok && ours["text"] != text {
			t.Errorf("text = %q, falcosidekick sends %q", ours["text"], text)
		}
		if ours["text"] == nil || ours["text"] == "" {
			t.Error("no text line")
		}
		fcards, _ := fsk["cards"].([]any)
		cards, _ := ours["cards"].([]any)
		if len(cards) != len(fcards) {
			t.Fatalf("%d cards, falcosidekick sends %d", len(cards), len(fcards))
		}
		if len(fcards) == 0 {
			return
		}
		widgets := func(card any) (labels []string, values map[string]any) {
			values = map[string]any{}
			c := card.(map[string]any)
			if fmt.Sprint(c["header"]) != "map[subtitle: title:]" {
				t.Errorf("header %v", c["header"])
			}
			for _, w := range c["sections"].([]any)[0].(map[string]any)["widgets"].([]any) {
				kv := w.(map[string]any)["keyValue"].(map[string]any)
				labels = append(labels, kv["topLabel"].(string))
				values[kv["topLabel"].(string)] = kv["content"]
			}
			return labels, values
		}
		flabels, fvalues := widgets(fcards[0])
		labels, values := widgets(cards[0])
		for _, l := range flabels {
			if values[l] != fvalues[l] {
				t.Errorf("widget %s = %q, falcosidekick sends %q", l, values[l], fvalues[l])
			}
		}
		if !chattest.Subsequence(flabels, labels) {
			t.Errorf("widget order %v does not keep falcosidekick's %v", labels, flabels)
		}
	}})
}

// endpoint is a Google Chat webhook as strict as Chat: the key and token in the query, a
// JSON message with only the fields saker's shape allows and a text or a card; it answers
// with the message it created.
type endpoint struct {
	chattest.Received[Message]
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e.Answered(w) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/spaces/SPACE/messages" || r.URL.Query().Get("key") != "KEY" || r.URL.Query().Get("token") != "TOKEN" {
		http.Error(w, `{"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}`, http.StatusUnauthorized)
		return
	}
	var m Message
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || (m.Text == "" && len(m.Cards) == 0) {
		http.Error(w, `{"error": {"code": 400, "message": "Message cannot be empty.", "status": "INVALID_ARGUMENT"}}`, http.StatusBadRequest)
		return
	}
	n := e.Add(m)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_, _ = fmt.Fprintf(w, `{"name": "spaces/SPACE/messages/%d", "text": %q}`, n, m.Text)
}

func TestSendToStrictEndpoint(t *testing.T) {
	e := &endpoint{}
	srv := posttest.Server(t, e)
	ev := goldens.Events(t, nil)["readme_try_event"]
	if err := newOutput(t, srv.URL+"/v1/spaces/SPACE/messages?key=KEY&token=TOKEN", nil).Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if got := e.Messages(); len(got) != 1 || got[0].Text != ev.Output || got[0].Cards[0].Sections[0].Widgets[0].KeyValue.Content != ev.Rule {
		t.Fatalf("got %+v", got)
	}
	// Text format: the output line alone, never the empty message falcosidekick sent.
	if err := newOutput(t, srv.URL+"/v1/spaces/SPACE/messages?key=KEY&token=TOKEN", func(c *Config) { c.OutputFormat = FormatText }).Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if got := e.Messages(); len(got) != 2 || got[1].Text != ev.Output || got[1].Cards != nil {
		t.Fatalf("text format: %+v", got[1:])
	}
	// A revoked token: permanent, and neither key nor token is printed.
	err := newOutput(t, srv.URL+"/v1/spaces/SPACE/messages?key=KEY&token=REVOKED", nil).Send(context.Background(), ev)
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "REVOKED") || strings.Contains(err.Error(), "KEY") {
		t.Fatalf("want a permanent error without the credentials, got %v", err)
	}
	e.AnswerWith(func(w http.ResponseWriter) bool {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}`, http.StatusTooManyRequests)
		return true
	})
	err = newOutput(t, srv.URL+"/v1/spaces/SPACE/messages?key=KEY&token=TOKEN", nil).Send(context.Background(), ev)
	if d, ok := delivery.RetryAfterHint(err); !ok || d != time.Second {
		t.Fatalf("want a 1s Retry-After hint, got %v", err)
	}
}

// TestTemplateFailureStillSends: a messageformat that fails on an event sends the output
// line instead of losing the alert.
func TestTemplateFailureStillSends(t *testing.T) {
	g := newOutput(t, "https://chat.example/v1/spaces/S/messages", func(c *Config) { c.MessageFormat = `{{ index .Tags 5 }}` })
	ev := goldens.Events(t, nil)["readme_try_event"]
	m, err := g.Build(ev)
	if err == nil || m.Text != ev.Output || len(m.Cards) != 1 {
		t.Fatalf("err %v, message %+v", err, m)
	}
}

// TestDelivery: messages published while Chat is unreachable all arrive once it is up,
// through the engine's retries, and googlechat.minimumpriority keeps lower events out.
func TestDelivery(t *testing.T) {
	posttest.Delivery(t, func(t *testing.T, base string) delivery.Sender {
		return newOutput(t, base+"/v1/spaces/SPACE/messages?key=KEY&token=TOKEN", nil)
	}, &endpoint{})
}

func TestValidate(t *testing.T) {
	posttest.Refuses(t, func() *Config {
		c := defaults()
		c.WebhookURL = "https://chat.googleapis.com/v1/spaces/S/messages?token=SECRETTOKEN"
		return c
	}, map[string]func(*Config){
		"googlechat.webhookurl":    func(c *Config) { c.WebhookURL = "chat.googleapis.com/v1/spaces/S/messages?token=SECRETTOKEN" },
		"googlechat.outputformat":  func(c *Config) { c.OutputFormat = "fields" },
		"googlechat.messageformat": func(c *Config) { c.MessageFormat = "{{ .Rule " },
	})
}
