// Package grafanaoncall posts each event to a Grafana OnCall "Formatted webhook"
// integration: the uid, state, title and message OnCall reads, as falcosidekick sends them,
// plus the event's facts for OnCall's templates.
package grafanaoncall

import (
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the grafanaoncall.* section.
type Config struct {
	WebhookURL    string            `koanf:"webhookurl" secret:"true" doc:"the integration's webhook URL (it holds the integration token); setting it enables the output"`
	CustomHeaders map[string]string `koanf:"customheaders" secret:"true" doc:"extra request headers (env: \"X-A:1,X-B:2\")"`
	CheckCert     bool              `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS     bool              `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.WebhookURL == "" {
		return nil
	}
	if err := outputs.ValidateURL("grafanaoncall.webhookurl", chat.SafeURL(c.WebhookURL)); err != nil {
		return err
	}
	return outputs.CheckHeaders("grafanaoncall.customheaders", c.CustomHeaders)
}

func init() {
	s := outputs.Define("grafanaoncall", "grafanaoncall", defaults,
		func(c *Config) bool { return c.WebhookURL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "post an alert to a Grafana OnCall formatted-webhook integration"
	outputs.Register(s)
}

// New builds the output; OnCall answers 200 "Ok.".
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "grafanaoncall", URL: c.WebhookURL, LogURL: chat.SafeURL(c.WebhookURL),
		ContentType: "application/json", Headers: c.CustomHeaders, CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		Body: func(ev *event.Event) ([]byte, error) { return chat.EncodeJSON(Build(ev)) }}, env)
}

// Alert is the formatted webhook's body.
type Alert struct {
	AlertUID     string         `json:"alert_uid"`
	State        string         `json:"state"`
	Title        string         `json:"title"`
	Message      string         `json:"message"`
	Rule         string         `json:"rule"`
	Priority     string         `json:"priority"`
	Source       string         `json:"source"`
	Hostname     string         `json:"hostname,omitempty"`
	Tags         []string       `json:"tags,omitempty"`
	OutputFields map[string]any `json:"output_fields,omitempty"`
}

// Build returns the alert for ev. The event's uuid is the alert uid, so a retried delivery
// groups with the first one instead of raising a second alert.
func Build(ev *event.Event) Alert {
	return Alert{AlertUID: ev.UUID, State: "alerting", Title: "[" + ev.Priority.String() + "] " + ev.Rule,
		Message: ev.Output, Rule: ev.Rule, Priority: ev.Priority.String(), Source: ev.Source,
		Hostname: ev.Hostname, Tags: ev.Tags, OutputFields: ev.OutputFields}
}
