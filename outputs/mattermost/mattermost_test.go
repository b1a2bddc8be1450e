package mattermost

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	goslack "github.com/slack-go/slack"

	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/slack"
)

func newOutput(t *testing.T, url string, mod func(*slack.Common)) *slack.Output {
	t.Helper()
	return chattest.SlackOutput(t, defaults, New, func(c *Config) *slack.Common { return &c.Common }, url, mod)
}

func TestPayloadGolden(t *testing.T) {
	// Mattermost renders Markdown, not Slack entities: text goes as it is.
	chattest.SlackPayloads(t, "mattermost", func(mod func(*slack.Common)) *slack.Output {
		return newOutput(t, "http://127.0.0.1:1/mattermost/hook", mod)
	}, nil)
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
	ev := goldens.Events(t, nil)["readme_try_event"]
	if err := newOutput(t, srv.URL+"/hooks/SECRETKEY", nil).Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Attachments[0].Fields[0].Value != ev.Rule || got[0].Attachments[0].Text != ev.Output {
		t.Fatalf("got %+v", got)
	}
	err := newOutput(t, srv.URL+"/hooks/WRONGSECRET", nil).Send(context.Background(), ev)
	if err == nil || strings.Contains(err.Error(), "WRONGSECRET") {
		t.Fatalf("want an error without the key, got %v", err)
	}
}
