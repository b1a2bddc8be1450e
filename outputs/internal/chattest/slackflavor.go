package chattest

import (
	"testing"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/slack"
)

// MessageFormat is the messageformat template falcosidekick's goldens were recorded with.
const MessageFormat = `Alert : rule *{{ .Rule }}* (prio {{ .Priority }}) user=*{{ index .OutputFields "user.name" }}* <&>`

// SlackVariants are falcosidekick's recordings of a Slack-compatible output named name
// (mattermost, rocketchat), as changes of its settings: the defaults, the fields and text
// formats, and MessageFormat.
func SlackVariants(name string) map[string]func(*slack.Common) {
	return map[string]func(*slack.Common){
		name:                    nil,
		name + "-fields":        func(c *slack.Common) { c.OutputFormat = slack.FormatFields },
		name + "-text":          func(c *slack.Common) { c.OutputFormat = slack.FormatText },
		name + "-messageformat": func(c *slack.Common) { c.MessageFormat = MessageFormat },
	}
}

// SlackPayloads runs Payloads over SlackVariants(name) for a Slack-compatible output whose
// text goes as it is (no Slack entity escaping): build sets the output up with a variant's
// settings, and each payload must keep falcosidekick's shape (SlackShape); more, when set,
// adds the output's own checks.
func SlackPayloads(t *testing.T, name string, build func(mod func(*slack.Common)) *slack.Output, more func(t *testing.T, c Case)) {
	t.Helper()
	variants := Variants(SlackVariants(name), func(mod func(*slack.Common)) Build {
		o := build(mod)
		return func(ev *event.Event) (any, error) { return o.Payload(ev) }
	})
	Payloads(t, Golden{Variants: variants, Compare: func(t *testing.T, c Case) {
		SlackShape(t, c.Falcosidekick, c.Ours, false, false)
		if more != nil {
			more(t, c)
		}
	}})
}

// SlackOutput builds a Slack-compatible output for a test (see Output): the common settings
// of its configuration, common(c), send to url and are changed by mod.
func SlackOutput[C any](t testing.TB, defaults func() *C, newOutput func(*C, outputs.Env) (*slack.Output, error),
	common func(*C) *slack.Common, url string, mod func(*slack.Common)) *slack.Output {
	t.Helper()
	return Output(t, defaults, newOutput, func(c *C) {
		sc := common(c)
		sc.WebhookURL = url
		if mod != nil {
			mod(sc)
		}
	})
}
