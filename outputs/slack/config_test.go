package slack_test

import (
	"testing"

	"github.com/saker-dev/saker/config"
	"github.com/saker-dev/saker/outputs/slack"
)

// TestEnvironmentKeys: falcosidekick's environment variable names reach the squashed
// shared keys, and the webhook URL is declared secret.
func TestEnvironmentKeys(t *testing.T) {
	c := slack.DefaultsForTest()
	sec := config.Section{Path: "slack", Target: c}
	_, err := config.Load(config.Options{Sections: []config.Section{sec}, Environ: []string{
		"SLACK_WEBHOOKURL=https://hooks.slack.com/services/T/B/SECRET", "SLACK_CHANNEL=#sec",
		"SLACK_OUTPUTFORMAT=text", "SLACK_USERNAME=saker", "SLACK_MESSAGEFORMAT=rule {{ .Rule }}", "SLACK_CHECKCERT=false",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.WebhookURL != "https://hooks.slack.com/services/T/B/SECRET" || c.Channel != "#sec" || c.OutputFormat != "text" ||
		c.Username != "saker" || c.MessageFormat != "rule {{ .Rule }}" || c.CheckCert || c.Footer != slack.DefaultFooter {
		t.Errorf("decoded %+v", c)
	}
	var secret bool
	for _, k := range sec.Keys() {
		if k.Path == "slack.webhookurl" {
			secret = k.Secret
		}
	}
	if !secret {
		t.Error("slack.webhookurl is not declared secret")
	}
}
