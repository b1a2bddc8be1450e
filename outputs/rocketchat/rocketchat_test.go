package rocketchat

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	goslack "github.com/slack-go/slack"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/slack"
)

func newOutput(t *testing.T, url string, mod func(*slack.Common)) *slack.Output {
	t.Helper()
	return chattest.SlackOutput(t, defaults, New, func(c *Config) *slack.Common { return &c.Common }, url, mod)
}

func TestPayloadGolden(t *testing.T) {
	chattest.SlackPayloads(t, "rocketchat", func(mod func(*slack.Common)) *slack.Output {
		return newOutput(t, "http://127.0.0.1:1/rocketchat/hook", mod)
	}, func(t *testing.T, c chattest.Case) {
		// falcosidekick sent no attachment at all in text mode (a listed defect).
		if c.Variant == "rocketchat-text" && !strings.Contains(string(c.Body), `"text":`) {
			t.Errorf("text mode without the output line: %s", c.Body)
		}
	})
}

// TestAnswers: Rocket.Chat's {"success": false} answer is a failed delivery, even with 200.
func TestAnswers(t *testing.T) {
	answer := `{"success":true}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		var m goslack.WebhookMessage
		if err := dec.Decode(&m); err != nil || len(m.Attachments) != 1 {
			http.Error(w, `{"success":false,"error":"bad payload"}`, http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, answer)
	}))
	defer srv.Close()
	o := newOutput(t, srv.URL+"/hooks/ID/SECRETTOKEN", nil)
	ev := goldens.Events(t, nil)["readme_try_event"]
	if err := o.Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	answer = `{"success":false,"error":"Invalid integration"}`
	err := o.Send(context.Background(), ev)
	if !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "Invalid integration") || strings.Contains(err.Error(), "SECRETTOKEN") {
		t.Fatalf("want a permanent error quoting Rocket.Chat without the token, got %v", err)
	}
}
