package slack_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/event"
)

// FuzzPayload: whatever an event carries, the payload is valid JSON and the Slack text and
// fields hold no raw < or > (no mention or link injection).
func FuzzPayload(f *testing.F) {
	f.Add("open <!channel>", "fd.name", "<https://x|y> & co", int64(3))
	f.Add("\xff\xfe", "", "\u2028", int64(-1))
	out := newOutput(f, "http://127.0.0.1:1/services/T/B/X")
	f.Fuzz(func(t *testing.T, output, key, value string, n int64) {
		ev := &event.Event{Rule: value, Priority: event.Priority(n%9 + 1), Output: output,
			OutputFields: map[string]any{key: value, "n": n, "l": []any{value, nil}}, Tags: []string{value}}
		body, err := out.Payload(ev)
		if err != nil {
			t.Fatal(err)
		}
		var msg struct {
			Attachments []struct {
				Text   string `json:"text"`
				Fields []struct{ Title, Value string }
			} `json:"attachments"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatalf("invalid JSON: %v\n%s", err, body)
		}
		texts := []string{msg.Attachments[0].Text}
		for _, f := range msg.Attachments[0].Fields {
			texts = append(texts, f.Title, f.Value)
		}
		for _, s := range texts {
			if strings.ContainsAny(s, "<>") {
				t.Fatalf("unescaped markup %q", s)
			}
		}
	})
}
