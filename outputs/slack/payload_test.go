package slack_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/slack"
)

// messageFormat is the template falcosidekick's goldens were recorded with.
const messageFormat = `Alert : rule *{{ .Rule }}* (prio {{ .Priority }}) user=*{{ index .OutputFields "user.name" }}* <&>`

// variants mirror falcosidekick's recorded settings (INDEX.tsv).
func variants() map[string]*slack.Config {
	base := func(mod func(c *slack.Config)) *slack.Config {
		c := slack.DefaultsForTest()
		c.WebhookURL = "http://127.0.0.1:1/slack/hook"
		mod(c)
		return c
	}
	return map[string]*slack.Config{
		"slack":        base(func(c *slack.Config) {}),
		"slack-fields": base(func(c *slack.Config) { c.OutputFormat = "fields" }),
		"slack-text":   base(func(c *slack.Config) { c.OutputFormat = "text" }),
		"slack-channel": base(func(c *slack.Config) {
			c.Channel, c.Footer, c.Icon, c.Username = "#falco", "custom-footer", "https://example.invalid/i.png", "fsk-bot"
		}),
		"slack-messageformat": base(func(c *slack.Config) { c.MessageFormat = messageFormat }),
	}
}

func build(t *testing.T, c *slack.Config) *slack.Output {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	o, err := slack.New(slack.SlackFlavor, c.Common, slack.Format{Channel: c.Channel, Footer: c.Footer}, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestPayloadGolden pins every variant x event payload and checks each against what
// falcosidekick sent for the same event and settings.
func TestPayloadGolden(t *testing.T) {
	evs := goldens.Events(t, nil)
	for variant, cfg := range variants() {
		o := build(t, cfg)
		for _, name := range goldens.Names(evs) {
			t.Run(variant+"/"+name, func(t *testing.T) {
				body, err := o.Payload(evs[name])
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(body, []byte(`\u003c`)) || bytes.Contains(body, []byte(`\u0026`)) {
					t.Errorf("payload escapes HTML characters: %s", body)
				}
				goldens.Check(t, filepath.Join("testdata", variant, name+".json"), goldens.IndentJSON(t, body))
				chattest.SlackShape(t, chattest.Falcosidekick(t, variant, name), chattest.Decode(t, body), true, true)
			})
		}
	}
}

// TestNonStringFieldsRendered: falcosidekick dropped numbers, null and lists; saker shows them.
func TestNonStringFieldsRendered(t *testing.T) {
	evs := goldens.Events(t, nil)
	body, err := build(t, variants()["slack"]).Payload(evs["debug_special_chars"])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"title":"proc.pid","value":"4242"`, `"title":"evt.rate","value":"3.14159"`, `"title":"container.id","value":"null"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("payload lacks %s:\n%s", want, body)
		}
	}
	body, _ = build(t, variants()["slack"]).Payload(evs["k8s_audit_critical"])
	if !strings.Contains(string(body), `"title":"ka.user.groups","value":"[\"system:serviceaccounts\",\"system:serviceaccounts:dev\",\"system:authenticated\"]"`) {
		t.Errorf("list field not rendered as JSON:\n%s", body)
	}
	body, _ = build(t, variants()["slack"]).Payload(evs["many_fields"])
	if n := strings.Count(string(body), `"title":`); n != 30+6 {
		t.Errorf("many_fields: %d fields, want 30 output fields + rule, priority, source, hostname, tags, time", n)
	}
}

// TestSlackMarkupEscaped: an event field cannot ping the channel or forge a link in Slack.
func TestSlackMarkupEscaped(t *testing.T) {
	ev := &event.Event{Rule: "r", Priority: event.Error, Output: "open <!channel> & <https://evil|click>",
		OutputFields: map[string]any{"fd.name": "<!here>"}}
	body, err := build(t, variants()["slack"]).Payload(ev)
	if err != nil {
		t.Fatal(err)
	}
	s := string(body)
	if strings.Contains(s, "<!channel>") && !strings.Contains(s, `"fallback":"open <!channel>`) || strings.Contains(s, `"value":"<!here>"`) {
		t.Errorf("markup not escaped: %s", s)
	}
	if !strings.Contains(s, `"text":"open &lt;!channel&gt; &amp; &lt;https://evil|click&gt;"`) {
		t.Errorf("attachment text not escaped for Slack: %s", s)
	}
}

// TestMessageFormatFailureKeepsAlert: a template that fails at run time does not lose the
// message; it goes out without the text line.
func TestMessageFormatFailureKeepsAlert(t *testing.T) {
	c := variants()["slack"]
	c.MessageFormat = `{{ index .Tags 5 }}`
	body, err := build(t, c).Payload(&event.Event{Rule: "r", Priority: event.Error, Output: "o"})
	if err != nil {
		t.Fatal(err)
	}
	m := chattest.Decode(t, body)
	if _, has := m["text"]; has || m["attachments"] == nil {
		t.Errorf("want the attachment without text, got %s", body)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(c *slack.Config)
		want string
	}{
		{func(c *slack.Config) { c.OutputFormat = "fancy" }, "slack.outputformat"},
		{func(c *slack.Config) { c.MessageFormat = "{{ .Rule " }, "slack.messageformat"},
		{func(c *slack.Config) { c.WebhookURL = "hooks.slack.com/services/T/B/SECRET" }, "slack.webhookurl"},
	} {
		c := variants()["slack"]
		tc.mod(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error naming %s", err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Validate() leaks the webhook token: %v", err)
		}
	}
	c := slack.DefaultsForTest()
	if err := c.Validate(); err != nil {
		t.Errorf("defaults without a URL (output disabled) must validate: %v", err)
	}
}

// TestSuppressedLineGolden: the first alert sent after a dedup window says, in the
// attachment text of every format, how many similar alerts the window suppressed.
func TestSuppressedLineGolden(t *testing.T) {
	ev := chattest.SuppressedEvent(t)
	for variant, cfg := range variants() {
		t.Run(variant, func(t *testing.T) {
			body, err := build(t, cfg).Payload(ev)
			if err != nil {
				t.Fatal(err)
			}
			text := chattest.Decode(t, body)["attachments"].([]any)[0].(map[string]any)["text"].(string)
			chattest.CheckSuppressed(t, variant, text, body)
		})
	}
}
