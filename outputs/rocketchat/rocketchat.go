// Package rocketchat posts each event to a Rocket.Chat incoming webhook integration.
// Rocket.Chat takes Slack's attachment payload, so this is the slack package's builder and
// Output with Rocket.Chat's Flavor: no footer (Rocket.Chat does not show one), and a 200
// answer with "success": false counts as a failure.
package rocketchat

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/slack"
)

// Config is the rocketchat.* section.
type Config struct {
	slack.Common `koanf:",squash"`
	// Footer exists because falcosidekick declares rocketchat.footer (with a default) and
	// never sends it: Rocket.Chat attachments have no footer. Accepting it keeps
	// falcosidekick files and variables free of warnings.
	Footer string `koanf:"footer" doc:"accepted for falcosidekick compatibility and ignored: falcosidekick never sent it and Rocket.Chat attachments have no footer"`
}

func defaults() *Config { return &Config{Common: slack.CommonDefaults()} }

// Validate names the key at fault.
func (c *Config) Validate() error { return c.Check("rocketchat") }

// Flavor is Rocket.Chat's spec.
var Flavor = slack.Flavor{Name: "rocketchat", CheckAnswer: checkAnswer}

// New builds the output from a configuration Validate accepted.
func New(c *Config, env outputs.Env) (*slack.Output, error) {
	return slack.New(Flavor, c.Common, slack.Format{}, env)
}

func init() {
	s := outputs.Define("rocketchat", "rocketchat", defaults,
		func(c *Config) bool { return c.WebhookURL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "post to a Rocket.Chat incoming webhook (Slack-compatible attachment)"
	outputs.Register(s)
}

// checkAnswer reads Rocket.Chat's {"success": bool, "error": "..."} answer. A refused
// message is permanent: the same payload would be refused again.
func checkAnswer(body []byte) error {
	var ans struct {
		Success *bool  `json:"success"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &ans) != nil || ans.Success == nil || *ans.Success {
		return nil
	}
	if ans.Error == "" {
		return delivery.Permanent(errors.New(`answered "success": false`))
	}
	return delivery.Permanent(fmt.Errorf(`answered "success": false: %s`, ans.Error))
}
