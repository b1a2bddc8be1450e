// Package grafanaoncall posts each event to a Grafana OnCall "Formatted webhook"
// integration: the uid, state, title and message OnCall reads, as falcosidekick sends them,
// plus the event's facts for OnCall's templates.
package grafanaoncall

import (
	"context"
	"fmt"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
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

// OnCall is the output.
type OnCall struct {
	url, logURL string
	client      *httpout.Client
}

// New builds the output.
func New(c *Config, env outputs.Env) (*OnCall, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	client, err := env.HTTPClient(c.CheckCert, c.MutualTLS, c.CustomHeaders)
	if err != nil {
		return nil, fmt.Errorf("grafanaoncall: %w", err)
	}
	return &OnCall{url: c.WebhookURL, logURL: chat.SafeURL(c.WebhookURL), client: client}, nil
}

// Name implements delivery.Output.
func (o *OnCall) Name() string { return "grafanaoncall" }

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

// Send posts one alert; OnCall answers 200 "Ok.".
func (o *OnCall) Send(ctx context.Context, ev *event.Event) error {
	body, err := chat.EncodeJSON(Build(ev))
	if err != nil {
		return delivery.Permanent(fmt.Errorf("grafanaoncall: encode alert: %w", err))
	}
	if err := o.client.Send(ctx, httpout.Request{URL: o.url, LogURL: o.logURL, ContentType: "application/json", Body: body}); err != nil {
		return fmt.Errorf("grafanaoncall: %w", err)
	}
	return nil
}
