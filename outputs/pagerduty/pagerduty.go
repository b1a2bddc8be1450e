// Package pagerduty triggers a PagerDuty incident for each event through the Events API v2,
// with falcosidekick's payload: the output line as the summary, "falco" as the source and
// the hostname and output fields as custom details.
package pagerduty

import (
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Events API v2 addresses by region.
var endpoints = map[string]string{
	"us": "https://events.pagerduty.com/v2/enqueue",
	"eu": "https://events.eu.pagerduty.com/v2/enqueue",
}

// Config is the pagerduty.* section.
type Config struct {
	RoutingKey       string `koanf:"routingkey" secret:"true" doc:"integration key of an Events API v2 integration; setting it enables the output"`
	outputs.Regional `koanf:",squash"`
}

func defaults() *Config { return &Config{Regional: outputs.DefaultRegional()} }

// Validate names the key at fault.
func (c *Config) Validate() error { return c.Check("pagerduty", c.RoutingKey, endpoints) }

func init() {
	s := outputs.Define("pagerduty", "pagerduty", defaults,
		func(c *Config) bool { return c.RoutingKey != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "trigger a PagerDuty incident (Events API v2)"
	outputs.Register(s)
}

// New builds the output. PagerDuty answers 202; 400 for an invalid event or key
// (permanent), 429 when the integration is throttled.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	u, err := c.URL("pagerduty", endpoints)
	if err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "pagerduty", URL: u, ContentType: "application/json",
		CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		Body: func(ev *event.Event) ([]byte, error) { return chat.EncodeJSON(c.Build(ev)) }}, env)
}

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
func (c *Config) Build(ev *event.Event) Event {
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
	return Event{RoutingKey: c.RoutingKey, EventAction: "trigger", DedupKey: ev.UUID, Payload: Payload{
		Summary: chat.Cut(ev.Output, maxSummary), Source: "falco", Severity: Severities[ev.Priority],
		Timestamp: ev.Time.UTC().Format(time.RFC3339Nano), Component: ev.Source, Class: ev.Rule,
		CustomDetails: details}}
}
