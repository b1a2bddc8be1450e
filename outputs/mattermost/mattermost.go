// Package mattermost posts each event to a Mattermost incoming webhook. Mattermost takes
// Slack's attachment payload, so this is the slack package's builder and Output with
// Mattermost's Flavor: Markdown text is sent as it is (no Slack entity escaping).
package mattermost

import (
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/slack"
)

// Config is the mattermost.* section.
type Config struct {
	slack.Common `koanf:",squash"`
	Footer       string `koanf:"footer" doc:"attachment footer (all and fields formats)"`
}

func defaults() *Config {
	return &Config{Common: slack.CommonDefaults(), Footer: slack.DefaultFooter}
}

// Validate names the key at fault.
func (c *Config) Validate() error { return c.Check("mattermost") }

// Flavor is Mattermost's spec.
var Flavor = slack.Flavor{Name: "mattermost"}

// New builds the output from a configuration Validate accepted.
func New(c *Config, env outputs.Env) (*slack.Output, error) {
	return slack.New(Flavor, c.Common, slack.Format{Footer: c.Footer}, env)
}

func init() {
	s := outputs.Define("mattermost", "mattermost", defaults,
		func(c *Config) bool { return c.WebhookURL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "post to a Mattermost incoming webhook (Slack-compatible attachment)"
	outputs.Register(s)
}
