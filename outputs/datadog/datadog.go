// Package datadog sends events to Datadog: as Datadog events (the datadog output, events
// API v1) and as logs (the datadoglogs output, logs intake v2), with falcosidekick's payloads.
package datadog

import (
	"sort"
	"strings"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Default sites (US1); other sites set host (https://api.datadoghq.eu, ...).
const (
	DefaultHost     = "https://api.datadoghq.com"
	DefaultLogsHost = "https://http-intake.logs.datadoghq.com"
)

// Config is the datadog.* section.
type Config struct {
	APIKey    string `koanf:"apikey" secret:"true" doc:"Datadog API key; setting it enables the output"`
	Host      string `koanf:"host" doc:"Datadog API address of your site (https://api.datadoghq.eu, https://us3.datadoghq.com, ...)"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

// LogsConfig is the datadoglogs.* section.
type LogsConfig struct {
	APIKey    string `koanf:"apikey" secret:"true" doc:"Datadog API key; setting it enables the output"`
	Host      string `koanf:"host" doc:"Datadog logs intake address of your site (https://http-intake.logs.datadoghq.eu, ...)"`
	Service   string `koanf:"service" doc:"service the logs are attributed to"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func init() {
	s := outputs.Define("datadog", "datadog", func() *Config { return &Config{Host: DefaultHost, CheckCert: true} },
		func(c *Config) bool { return c.APIKey != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return NewEvents(c, env) })
	s.Doc = "post a Datadog event"
	outputs.Register(s)
	l := outputs.Define("datadoglogs", "datadoglogs", func() *LogsConfig { return &LogsConfig{Host: DefaultLogsHost, CheckCert: true} },
		func(c *LogsConfig) bool { return c.APIKey != "" },
		func(c *LogsConfig, env outputs.Env) (delivery.Output, error) { return NewLogs(c, env) })
	l.Doc = "send each event as a Datadog log"
	outputs.Register(l)
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.APIKey == "" {
		return nil
	}
	return outputs.ValidateURL("datadog.host", c.Host)
}

// Validate names the key at fault.
func (c *LogsConfig) Validate() error {
	if c.APIKey == "" {
		return nil
	}
	return outputs.ValidateURL("datadoglogs.host", c.Host)
}

// AlertTypes map Falco priorities onto Datadog event alert types.
var AlertTypes = map[event.Priority]string{
	event.Emergency:     "error",
	event.Alert:         "error",
	event.Critical:      "error",
	event.Error:         "error",
	event.Warning:       "warning",
	event.Notice:        "info",
	event.Informational: "info",
	event.Debug:         "info",
}

// NewEvents builds the datadog output; Datadog answers 202. falcosidekick passed the key as
// a query parameter, which is kept; errors and logs redact it.
func NewEvents(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "datadog", URL: strings.TrimSuffix(c.Host, "/") + "/api/v1/events?api_key=" + c.APIKey,
		CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		Body: func(ev *event.Event) ([]byte, error) { return chat.EncodeJSON(BuildEvent(ev)) }}, env)
}

// Event is the events API body.
type Event struct {
	Title          string   `json:"title"`
	Text           string   `json:"text"`
	AlertType      string   `json:"alert_type"`
	SourceTypeName string   `json:"source_type_name"`
	Host           string   `json:"host,omitempty"`
	DateHappened   int64    `json:"date_happened"`
	Tags           []string `json:"tags"`
}

// maxText is the events API's limit on an event's text.
const maxText = 4000

// BuildEvent returns the Datadog event for ev: the rule as the title, the output line as the
// text, and a tag per output field (of any JSON type), the source, the hostname and the
// event's tags.
func BuildEvent(ev *event.Event) Event {
	tags := make([]string, 0, len(ev.OutputFields)+len(ev.Tags)+3)
	for _, k := range chat.SortedKeys(ev.OutputFields) {
		tags = append(tags, k+":"+chat.FieldValue(ev.OutputFields[k]))
	}
	if ev.Source != "" {
		tags = append(tags, "source:"+ev.Source)
	}
	tags = append(tags, "source:falco", "hostname:"+ev.Hostname)
	evTags := append([]string(nil), ev.Tags...)
	sort.Strings(evTags)
	tags = append(tags, evTags...)
	return Event{Title: ev.Rule, Text: chat.Cut(ev.Output, maxText), AlertType: AlertTypes[ev.Priority], SourceTypeName: "falco",
		Host: ev.Hostname, DateHappened: ev.Time.Unix(), Tags: tags}
}

// NewLogs builds the datadoglogs output; the intake answers 202.
func NewLogs(c *LogsConfig, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	service := c.Service
	return falcopost.New(falcopost.Options{Name: "datadoglogs", URL: strings.TrimSuffix(c.Host, "/") + "/api/v2/logs",
		Headers: map[string]string{"DD-API-KEY": c.APIKey}, CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		Body: func(ev *event.Event) ([]byte, error) { return chat.EncodeJSON(BuildLog(service, ev)) }}, env)
}

// Log is one entry of the logs intake.
type Log struct {
	DDSource string `json:"ddsource"`
	DDTags   string `json:"ddtags,omitempty"`
	Hostname string `json:"hostname"`
	Service  string `json:"service,omitempty"`
	Status   string `json:"status"`
	Message  string `json:"message"`
}

// BuildLog returns the log entry for ev: the Falco JSON as the message (Datadog parses it
// into attributes), the priority as the log status (Datadog's levels are Falco's) and the
// rule, source and event tags as tags.
func BuildLog(service string, ev *event.Event) Log {
	tags := []string{"rule:" + ev.Rule, "source:" + ev.Source}
	tags = append(tags, ev.Tags...)
	return Log{DDSource: "falco", DDTags: strings.Join(tags, ","), Hostname: ev.Hostname, Service: service,
		Status: strings.ToLower(ev.Priority.String()), Message: string(ev.JSON())}
}
