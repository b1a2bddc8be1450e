package slack_test

import (
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/slack"
)

// TestPayloadTruncatesLongFields: a message for an event over 4096 bytes carries its long
// fields cut to 512 bytes, as falcosidekick sends them.
func TestPayloadTruncatesLongFields(t *testing.T) {
	c := slack.CommonDefaults()
	c.WebhookURL = "http://127.0.0.1:1/slack/hook"
	o, err := slack.New(slack.SlackFlavor, c, slack.Format{}, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 5000)
	ev := &event.Event{Rule: "r", Priority: event.Warning, Time: time.Unix(0, 0).UTC(), Source: "syscalls",
		Output: "cmd=" + long, OutputFields: map[string]any{"proc.cmdline": long}}
	body, err := o.Payload(ev)
	if err != nil {
		t.Fatal(err)
	}
	cut := long[:outputs.TruncateFieldOver-len(outputs.TruncationMark)] + outputs.TruncationMark
	if strings.Contains(string(body), long) || strings.Count(string(body), cut) < 2 {
		t.Errorf("payload of %d bytes does not carry the cut field in the text and the fields", len(body))
	}
	if ev.OutputFields["proc.cmdline"] != long {
		t.Error("the shared event was modified")
	}
}
