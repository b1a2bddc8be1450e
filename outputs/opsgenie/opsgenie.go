// Package opsgenie creates an Opsgenie alert for each event through the Alert API v2, with
// falcosidekick's payload: the output line as the message, the rule as the description, the
// event's facts and output fields as details, and a priority P1-P5 from Falco's.
package opsgenie

import (
	"strings"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Alert API addresses by region.
var endpoints = map[string]string{
	"us": "https://api.opsgenie.com/v2/alerts",
	"eu": "https://api.eu.opsgenie.com/v2/alerts",
}

// Config is the opsgenie.* section.
type Config struct {
	APIKey           string `koanf:"apikey" secret:"true" doc:"API key of an API integration; setting it enables the output"`
	outputs.Regional `koanf:",squash"`
}

func defaults() *Config { return &Config{Regional: outputs.DefaultRegional()} }

// Validate names the key at fault.
func (c *Config) Validate() error { return c.Check("opsgenie", c.APIKey, endpoints) }

func init() {
	s := outputs.Define("opsgenie", "opsgenie", defaults,
		func(c *Config) bool { return c.APIKey != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "create an Opsgenie alert (Alert API v2)"
	outputs.Register(s)
}

// New builds the output. Opsgenie answers 202 and processes the request asynchronously;
// 401/403/422 are permanent, 429 is retried.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	u, err := c.URL("opsgenie", endpoints)
	if err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "opsgenie", URL: u,
		Headers: map[string]string{"Authorization": "GenieKey " + c.APIKey}, CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		Body: func(ev *event.Event) ([]byte, error) { return chat.EncodeJSON(Build(ev)) }}, env)
}

// Alert is the Alert API's create request.
type Alert struct {
	Message     string            `json:"message"`
	Alias       string            `json:"alias,omitempty"`
	Entity      string            `json:"entity"`
	Description string            `json:"description"`
	Tags        []string          `json:"tags,omitempty"`
	Details     map[string]string `json:"details"`
	Priority    string            `json:"priority"`
}

// Priorities map Falco priorities onto Opsgenie's (falcosidekick's mapping).
var Priorities = map[event.Priority]string{
	event.Emergency:     "P1",
	event.Alert:         "P1",
	event.Critical:      "P2",
	event.Error:         "P3",
	event.Warning:       "P4",
	event.Notice:        "P5",
	event.Informational: "P5",
	event.Debug:         "P5",
}

// Opsgenie's limits on an alert's fields (longer values are refused or cut by Opsgenie).
const (
	maxMessage     = 130
	maxDescription = 15000
	maxAlias       = 512
	maxTag         = 50
	maxTags        = 20
)

// Build returns the alert for ev. The message holds as much of the output line as Opsgenie
// allows (130 characters); the whole line is in the details. Details are strings, so output
// fields of other JSON types are written as JSON; "." in their names becomes "_" as
// falcosidekick did. The event's uuid is the alias, so a retried delivery deduplicates into
// the open alert.
func Build(ev *event.Event) Alert {
	details := map[string]string{"hostname": ev.Hostname, "rule": ev.Rule, "priority": ev.Priority.String(), "source": ev.Source}
	if len(ev.Tags) > 0 {
		details["tags"] = chat.Tags(ev)
	}
	for k, v := range ev.OutputFields {
		details[strings.ReplaceAll(k, ".", "_")] = chat.FieldValue(v)
	}
	if len(ev.Output) > maxMessage {
		details["output"] = ev.Output
	}
	var tags []string
	for _, t := range ev.Tags[:min(len(ev.Tags), maxTags)] {
		tags = append(tags, chat.Cut(t, maxTag))
	}
	return Alert{Message: chat.Cut(ev.Output, maxMessage), Alias: chat.Cut(ev.UUID, maxAlias), Entity: "Falcosidekick",
		Description: chat.Cut(ev.Rule, maxDescription), Tags: tags, Details: details, Priority: Priorities[ev.Priority]}
}
