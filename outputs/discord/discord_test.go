package discord

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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

// TestPayloadGolden checks each message against saker's golden file and against what
// falcosidekick sent for the same event: the same keys, the same colour (a number rather
// than a string), and every field falcosidekick listed with the same value, in its order.
func TestPayloadGolden(t *testing.T) {
	chattest.Payloads(t, chattest.Golden{Variants: map[string]chattest.Build{
		"discord": func(ev *event.Event) (any, error) { return Build(ev, DefaultIcon), nil },
	}, Compare: func(t *testing.T, c chattest.Case) {
		fsk, ours := c.Falcosidekick, c.Ours
		for _, k := range []string{"content", "avatar_url"} {
			if ours[k] != fsk[k] {
				t.Errorf("%s = %q, falcosidekick sends %q", k, ours[k], fsk[k])
			}
		}
		fe, oe := fsk["embeds"].([]any)[0].(map[string]any), ours["embeds"].([]any)[0].(map[string]any)
		for _, k := range []string{"title", "url", "description"} {
			if oe[k] != fe[k] {
				t.Errorf("embed %s = %q, falcosidekick sends %q", k, oe[k], fe[k])
			}
		}
		if want, _ := strconv.Atoi(fe["color"].(string)); oe["color"] != float64(want) {
			t.Errorf("color = %v, falcosidekick sends %v", oe["color"], fe["color"])
		}
		got := map[string]any{}
		var names, fnames []string
		for _, f := range oe["fields"].([]any) {
			m := f.(map[string]any)
			got[m["name"].(string)] = m["value"]
			names = append(names, m["name"].(string))
		}
		// Over Discord's 25 fields (falcosidekick sent 26 for many_fields, which Discord
		// refuses), saker lists what fits and says how many it left out.
		_, cut := got["…"]
		for _, f := range fe["fields"].([]any) {
			m := f.(map[string]any)
			if _, ok := got[m["name"].(string)]; !ok && cut {
				continue
			}
			fnames = append(fnames, m["name"].(string))
			if got[m["name"].(string)] != m["value"] {
				t.Errorf("field %s = %q, falcosidekick sends %q", m["name"], got[m["name"].(string)], m["value"])
			}
		}
		if !chattest.Subsequence(fnames, names) {
			t.Errorf("field order %v does not keep falcosidekick's %v", names, fnames)
		}
	}})
}

// TestSuppressedLineGolden: the first alert sent after a dedup window ends its description
// with how many similar alerts the window suppressed, also when the output line had to be
// shortened to Discord's limit.
func TestSuppressedLineGolden(t *testing.T) {
	ev := chattest.SuppressedEvent(t)
	m := Build(ev, DefaultIcon)
	chattest.CheckSuppressed(t, "", m.Embeds[0].Description, m)
	long := ev.Clone()
	long.Output = strings.Repeat("é", 5000)
	desc := Build(long, DefaultIcon).Embeds[0].Description
	if !strings.HasSuffix(desc, "…\n"+chattest.SuppressedLine) || utf8.RuneCountInString(desc) != maxDescription {
		t.Errorf("long output: description of %d characters ending %q", utf8.RuneCountInString(desc), desc[len(desc)-80:])
	}
}

// TestLimits: an event larger than an embed allows is shortened to what Discord accepts
// rather than refused with 400.
func TestLimits(t *testing.T) {
	fields := map[string]any{}
	for i := range 40 {
		fields[fmt.Sprintf("field.%02d", i)] = strings.Repeat("é", 2000)
	}
	ev := &event.Event{Output: strings.Repeat("x", 5000), Priority: event.Alert, Rule: "r", Time: time.Now(),
		Source: "syscalls", Hostname: "h", Tags: []string{"a"}, OutputFields: fields}
	m := Build(ev, "")
	e := m.Embeds[0]
	if len(e.Fields) != maxFields || utf8.RuneCountInString(e.Description) != maxDescription {
		t.Fatalf("%d fields, description of %d characters", len(e.Fields), utf8.RuneCountInString(e.Description))
	}
	for _, f := range e.Fields {
		if utf8.RuneCountInString(f.Value) > maxFieldValue || f.Value == "" {
			t.Errorf("field %s: value of %d characters", f.Name, utf8.RuneCountInString(f.Value))
		}
	}
	if e.Fields[len(e.Fields)-1].Name != "time" || !strings.Contains(e.Fields[len(e.Fields)-3].Value, "22 more output fields") {
		t.Errorf("fields end with %+v", e.Fields[len(e.Fields)-3:])
	}
	if m.AvatarURL != "" || e.Color != 11027200 {
		t.Errorf("avatar %q, colour %d", m.AvatarURL, e.Color)
	}
}

// endpoint is a Discord webhook as strict as Discord: the body must decode into the
// documented execute-webhook fields only, within the embed limits; a valid message gets 204.
type endpoint struct {
	chattest.Received[Message]
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e.Answered(w) {
		return
	}
	var m Message
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json; charset=utf-8" || r.URL.Path != "/api/webhooks/1/TOKEN" {
		http.Error(w, `{"message": "Unknown Webhook", "code": 10015}`, http.StatusNotFound)
		return
	}
	if err := dec.Decode(&m); err != nil || len(m.Embeds) != 1 || len(m.Embeds[0].Fields) > maxFields {
		http.Error(w, `{"message": "Invalid Form Body", "code": 50035}`, http.StatusBadRequest)
		return
	}
	e.Add(m)
	w.WriteHeader(http.StatusNoContent)
}

func TestSendToStrictEndpoint(t *testing.T) {
	e := &endpoint{}
	srv := posttest.Server(t, e)
	ev := goldens.Events(t, nil)["k8s_audit_critical"]
	if err := newOutput(t, srv.URL+"/api/webhooks/1/TOKEN").Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if got := e.Messages(); len(got) != 1 || got[0].Embeds[0].Description != ev.Output || got[0].Embeds[0].Color != 15105570 {
		t.Fatalf("got %+v", got)
	}
	// A wrong webhook: a permanent error that does not print the token.
	err := newOutput(t, srv.URL+"/api/webhooks/1/WRONGTOKEN").Send(context.Background(), ev)
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "WRONGTOKEN") {
		t.Fatalf("want a permanent error without the token, got %v", err)
	}
	// Rate limited: the engine is told when to come back.
	e.AnswerWith(func(w http.ResponseWriter) bool {
		w.Header().Set("Retry-After", "2")
		http.Error(w, `{"message": "You are being rate limited.", "retry_after": 2.0, "global": false}`, http.StatusTooManyRequests)
		return true
	})
	err = newOutput(t, srv.URL+"/api/webhooks/1/TOKEN").Send(context.Background(), ev)
	if d, ok := delivery.RetryAfterHint(err); !ok || d != 2*time.Second {
		t.Fatalf("want a 2s Retry-After hint, got %v", err)
	}
}

// TestDelivery: messages published while Discord is unreachable all arrive once it is up,
// through the engine's retries, and discord.minimumpriority keeps lower events out.
func TestDelivery(t *testing.T) {
	posttest.Delivery(t, func(t *testing.T, base string) delivery.Sender { return newOutput(t, base+"/api/webhooks/1/TOKEN") }, &endpoint{})
}

func TestValidate(t *testing.T) {
	c := defaults()
	c.WebhookURL = "discord.com/api/webhooks/1/SECRETTOKEN"
	posttest.Refused(t, c.Validate(), "discord.webhookurl")
}
