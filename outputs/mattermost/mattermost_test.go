package mattermost

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	goslack "github.com/slack-go/slack"

	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/slack"
)

const messageFormat = `Alert : rule *{{ .Rule }}* (prio {{ .Priority }}) user=*{{ index .OutputFields "user.name" }}* <&>`

func build(t *testing.T, c *Config) *slack.Output {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	o, err := slack.New(Flavor, c.Common, slack.Format{Footer: c.Footer}, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestPayloadGolden(t *testing.T) {
	evs := goldens.Events(t, nil)
	for variant, mod := range map[string]func(*Config){
		"mattermost":               func(*Config) {},
		"mattermost-fields":        func(c *Config) { c.OutputFormat = "fields" },
		"mattermost-text":          func(c *Config) { c.OutputFormat = "text" },
		"mattermost-messageformat": func(c *Config) { c.MessageFormat = messageFormat },
	} {
		c := defaults()
		c.WebhookURL = "http://127.0.0.1:1/mattermost/hook"
		mod(c)
		o := build(t, c)
		for _, name := range goldens.Names(evs) {
			t.Run(variant+"/"+name, func(t *testing.T) {
				body, err := o.Payload(evs[name])
				if err != nil {
					t.Fatal(err)
				}
				goldens.Check(t, filepath.Join("testdata", variant, name+".json"), goldens.IndentJSON(t, body))
				// Mattermost renders Markdown, not Slack entities: text goes as it is.
				chattest.SlackShape(t, chattest.Falcosidekick(t, variant, name), chattest.Decode(t, body), false, false)
			})
		}
	}
}

// TestSendToWebhook posts to a local incoming-webhook endpoint that decodes the body
// strictly as Mattermost's Slack-compatible payload and answers "ok" as Mattermost does.
func TestSendToWebhook(t *testing.T) {
	var mu sync.Mutex
	var got []goslack.WebhookMessage
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		var m goslack.WebhookMessage
		if err := dec.Decode(&m); err != nil || r.URL.Path != "/hooks/SECRETKEY" {
			http.Error(w, "Unable to parse incoming data", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c := defaults()
	c.WebhookURL = srv.URL + "/hooks/SECRETKEY"
	ev := goldens.Events(t, nil)["readme_try_event"]
	if err := build(t, c).Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Attachments[0].Fields[0].Value != ev.Rule || got[0].Attachments[0].Text != ev.Output {
		t.Fatalf("got %+v", got)
	}
	c.WebhookURL = srv.URL + "/hooks/WRONGSECRET"
	err := build(t, c).Send(context.Background(), ev)
	if err == nil || strings.Contains(err.Error(), "WRONGSECRET") {
		t.Fatalf("want an error without the key, got %v", err)
	}
}
