package cliq

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

func newOutput(t *testing.T, url string, mod func(*Config)) *Cliq {
	t.Helper()
	return chattest.Output(t, defaults, New, func(c *Config) { c.WebhookURL = url }, mod)
}

// variants mirror falcosidekick's recorded settings.
func variants(t *testing.T) map[string]chattest.Build {
	return chattest.Variants(map[string]func(*Config){
		"cliq":               nil,
		"cliq-fields":        func(c *Config) { c.OutputFormat = FormatFields },
		"cliq-text":          func(c *Config) { c.OutputFormat = FormatText },
		"cliq-useemoji":      func(c *Config) { c.UseEmoji = true },
		"cliq-messageformat": func(c *Config) { c.MessageFormat = chattest.MessageFormat },
	}, func(mod func(*Config)) chattest.Build {
		o := newOutput(t, "https://cliq.example/api/v2/channelsbyname/alerts/message?zapikey=K", mod)
		return func(ev *event.Event) (any, error) { return o.Build(ev) }
	})
}

// TestSuppressedLineGolden: the first alert sent after a dedup window says, in the text of
// every format, how many similar alerts the window suppressed.
func TestSuppressedLineGolden(t *testing.T) {
	chattest.Suppressed(t, variants(t), func(m any) string { return m.(Message).Text })
}

// TestPayloadGolden checks each message against saker's golden file and against what
// falcosidekick sent for the same event and settings: the same text line and bot, the same
// slides, and every table row it had with the same value, in its order.
func TestPayloadGolden(t *testing.T) {
	chattest.Payloads(t, chattest.Golden{Variants: variants(t), Compare: func(t *testing.T, c chattest.Case) {
		fsk, ours := c.Falcosidekick, c.Ours
		for _, k := range []string{"text", "bot"} {
			if fmt.Sprint(ours[k]) != fmt.Sprint(fsk[k]) {
				t.Errorf("%s = %v, falcosidekick sends %v", k, ours[k], fsk[k])
			}
		}
		fslides, _ := fsk["slides"].([]any)
		slides, _ := ours["slides"].([]any)
		if len(slides) != len(fslides) {
			t.Fatalf("%d slides, falcosidekick sends %d", len(slides), len(fslides))
		}
		for i, fs := range fslides {
			f, o := fs.(map[string]any), slides[i].(map[string]any)
			if f["type"] != o["type"] {
				t.Fatalf("slide %d is a %v, falcosidekick sends a %v", i, o["type"], f["type"])
			}
			if f["type"] == "text" {
				if f["data"] != o["data"] {
					t.Errorf("text slide %q, falcosidekick sends %q", o["data"], f["data"])
				}
				continue
			}
			rows := func(slide map[string]any) (names []string, values map[string]any) {
				values = map[string]any{}
				data := slide["data"].(map[string]any)
				if fmt.Sprint(data["headers"]) != "[field value]" {
					t.Errorf("headers %v", data["headers"])
				}
				for _, r := range data["rows"].([]any) {
					row := r.(map[string]any)
					names = append(names, row["field"].(string))
					values[row["field"].(string)] = row["value"]
				}
				return names, values
			}
			fnames, fvalues := rows(f)
			names, values := rows(o)
			for _, n := range fnames {
				if values[n] != fvalues[n] {
					t.Errorf("row %s = %q, falcosidekick sends %q", n, values[n], fvalues[n])
				}
			}
			if !chattest.Subsequence(fnames, names) {
				t.Errorf("row order %v does not keep falcosidekick's %v", names, fnames)
			}
		}
	}})
}

// TestEmojis: useemoji puts falcosidekick's emoji for every priority before the text.
func TestEmojis(t *testing.T) {
	o := newOutput(t, "https://cliq.example/x", func(c *Config) { c.UseEmoji = true })
	for p := event.Debug; p <= event.Emergency; p++ {
		m, _ := o.Build(&event.Event{Output: "out", Priority: p, Rule: "r", Time: time.Now()})
		if e := Emojis[p]; e == "" || m.Text != e+" out" {
			t.Errorf("%s: text %q", p, m.Text)
		}
	}
}

// endpoint is a Cliq channel webhook as strict as Cliq: the zapikey in the query and a
// message with known fields only, a text and well-formed slides; it answers 204.
type endpoint struct {
	chattest.Received[Message]
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/channelsbyname/alerts/message" || r.URL.Query().Get("zapikey") != "KEY" {
		http.Error(w, `{"code": "oauthtoken_invalid", "message": "Invalid OAuth token passed."}`, http.StatusUnauthorized)
		return
	}
	var m struct {
		Text   string `json:"text"`
		Bot    Bot    `json:"bot"`
		Slides []struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		} `json:"slides"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || m.Text == "" {
		http.Error(w, `{"code": "input_invalid", "message": "Invalid input"}`, http.StatusBadRequest)
		return
	}
	out := Message{Text: m.Text, Bot: m.Bot}
	for _, s := range m.Slides {
		switch s.Type {
		case "text":
			var text string
			if json.Unmarshal(s.Data, &text) != nil {
				http.Error(w, `{"code": "input_invalid"}`, http.StatusBadRequest)
				return
			}
			out.Slides = append(out.Slides, Slide{Type: s.Type, Data: text})
		case "table":
			var table Table
			d := json.NewDecoder(strings.NewReader(string(s.Data)))
			d.DisallowUnknownFields()
			if d.Decode(&table) != nil || len(table.Headers) != 2 {
				http.Error(w, `{"code": "input_invalid"}`, http.StatusBadRequest)
				return
			}
			out.Slides = append(out.Slides, Slide{Type: s.Type, Data: &table})
		default:
			http.Error(w, `{"code": "input_invalid"}`, http.StatusBadRequest)
			return
		}
	}
	e.Add(out)
	w.WriteHeader(http.StatusNoContent)
}

func TestSendToStrictEndpoint(t *testing.T) {
	e := &endpoint{}
	srv := posttest.Server(t, e)
	ev := goldens.Events(t, nil)["readme_try_event"]
	url := srv.URL + "/api/v2/channelsbyname/alerts/message?zapikey=KEY"
	if err := newOutput(t, url, func(c *Config) { c.MessageFormat = chattest.MessageFormat }).Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	got := e.Messages()
	if len(got) != 1 || !strings.HasPrefix(got[0].Text, "Alert : rule *Write below binary dir*") || len(got[0].Slides) != 2 ||
		got[0].Slides[1].Data.(*Table).Rows[0].Value != ev.Rule {
		t.Fatalf("got %+v", got)
	}
	err := newOutput(t, srv.URL+"/api/v2/channelsbyname/alerts/message?zapikey=STALEKEY", nil).Send(context.Background(), ev)
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "STALEKEY") {
		t.Fatalf("want a permanent error without the key, got %v", err)
	}
}

// TestDelivery: messages published while Cliq is unreachable all arrive once it is up,
// through the engine's retries, and cliq.minimumpriority keeps lower events out.
func TestDelivery(t *testing.T) {
	posttest.Delivery(t, func(t *testing.T, base string) delivery.Sender {
		return newOutput(t, base+"/api/v2/channelsbyname/alerts/message?zapikey=KEY", nil)
	}, &endpoint{})
}

func TestValidate(t *testing.T) {
	posttest.Refuses(t, func() *Config {
		c := defaults()
		c.WebhookURL = "https://cliq.zoho.com/api/v2/channelsbyname/a/message?zapikey=SECRETKEY"
		return c
	}, map[string]func(*Config){
		"cliq.webhookurl":    func(c *Config) { c.WebhookURL = "cliq.zoho.com/api/v2/channelsbyname/a/message?zapikey=SECRETKEY" },
		"cliq.outputformat":  func(c *Config) { c.OutputFormat = "table" },
		"cliq.messageformat": func(c *Config) { c.MessageFormat = "{{ .Rule " },
	})
}
