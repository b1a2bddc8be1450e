// Package pagerduty triggers a PagerDuty incident for each event through the Events API v2,
// with falcosidekick's payload: the output line as the summary, "falco" as the source and
// the hostname and output fields as custom details.
package pagerduty

import (
	"context"
	"fmt"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
)

// Events API v2 addresses by region.
var endpoints = map[string]string{
	"us": "https://events.pagerduty.com/v2/enqueue",
	"eu": "https://events.eu.pagerduty.com/v2/enqueue",
}

// Config is the pagerduty.* section.
type Config struct {
	RoutingKey string `koanf:"routingkey" secret:"true" doc:"integration key of an Events API v2 integration; setting it enables the output"`
	Region     string `koanf:"region" doc:"us or eu: which PagerDuty service region the account is in"`
	Endpoint   string `koanf:"endpoint" doc:"Events API URL replacing the region's (a proxy, a test endpoint); empty: the region's"`
	CheckCert  bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS  bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{Region: "us", CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.RoutingKey == "" {
		return nil
	}
	_, err := outputs.RegionURL("pagerduty", c.Region, c.Endpoint, endpoints)
	return err
}

func init() {
	s := outputs.Define("pagerduty", "pagerduty", defaults,
		func(c *Config) bool { return c.RoutingKey != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "trigger a PagerDuty incident (Events API v2)"
	outputs.Register(s)
}

// PagerDuty is the output.
type PagerDuty struct {
	key, url string
	client   *httpout.Client
}

// New builds the output.
func New(c *Config, env outputs.Env) (*PagerDuty, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	client, err := env.HTTPClient(c.CheckCert, c.MutualTLS, nil)
	if err != nil {
		return nil, fmt.Errorf("pagerduty: %w", err)
	}
	url, _ := outputs.RegionURL("pagerduty", c.Region, c.Endpoint, endpoints) // checked by Validate
	return &PagerDuty{key: c.RoutingKey, url: url, client: client}, nil
}

// Name implements delivery.Output.
func (p *PagerDuty) Name() string { return "pagerduty" }

// Event is an Events API v2 trigger.
type Event struct {
	RoutingKey  string  `json:"routing_key"`
	EventAction string  `json:"event_action"`
	DedupKey    string  `json:"dedup_key,omitempty"`
	Payload     Payload `json:"payload"`
}

// Payload is the alert's content.
type Payload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp"`
	Component     string         `json:"component,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details"`
}

// Severities map Falco priorities onto PagerDuty's four (falcosidekick sent "critical" for
// every event).
var Severities = map[event.Priority]string{
	event.Emergency:     "critical",
	event.Alert:         "critical",
	event.Critical:      "critical",
	event.Error:         "error",
	event.Warning:       "warning",
	event.Notice:        "info",
	event.Informational: "info",
	event.Debug:         "info",
}

// maxSummary is the Events API's limit on a summary (longer ones are cut by PagerDuty).
const maxSummary = 1024

// Build returns the trigger for ev. The event's uuid is the dedup key: a delivery retried
// after a lost answer updates the same incident instead of opening a second one.
func (p *PagerDuty) Build(ev *event.Event) Event {
	details := make(map[string]any, len(ev.OutputFields)+4)
	for k, v := range ev.OutputFields {
		details[k] = v
	}
	details["hostname"] = ev.Hostname
	details["rule"] = ev.Rule
	details["priority"] = ev.Priority.String()
	if len(ev.Tags) > 0 {
		details["tags"] = chat.Tags(ev)
	}
	return Event{RoutingKey: p.key, EventAction: "trigger", DedupKey: ev.UUID, Payload: Payload{
		Summary: chat.Cut(ev.Output, maxSummary), Source: "falco", Severity: Severities[ev.Priority],
		Timestamp: ev.Time.UTC().Format(time.RFC3339Nano), Component: ev.Source, Class: ev.Rule,
		CustomDetails: details}}
}

// Send triggers one incident. PagerDuty answers 202; 400 for an invalid event or key
// (permanent), 429 when the integration is throttled.
func (p *PagerDuty) Send(ctx context.Context, ev *event.Event) error {
	body, err := chat.EncodeJSON(p.Build(ev))
	if err != nil {
		return delivery.Permanent(fmt.Errorf("pagerduty: encode event: %w", err))
	}
	if err := p.client.Send(ctx, httpout.Request{URL: p.url, ContentType: "application/json", Body: body}); err != nil {
		return fmt.Errorf("pagerduty: %w", err)
	}
	return nil
}
