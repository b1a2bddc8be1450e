// Package grafana adds a Grafana annotation for each event (POST /api/annotations), as
// falcosidekick does: the output line as the text at the event's time, tagged with "falco",
// the priority, rule, source and hostname, optionally on one dashboard and panel.
package grafana

import (
	"fmt"
	"sort"
	"strings"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the grafana.* section.
type Config struct {
	HostPort        string            `koanf:"hostport" doc:"Grafana address, http(s)://host:port; with apikey, setting it enables the output"`
	APIKey          string            `koanf:"apikey" secret:"true" doc:"service account token (or API key) allowed to write annotations"`
	DashboardID     int               `koanf:"dashboardid" doc:"dashboard the annotations are scoped to; 0: organization-wide"`
	PanelID         int               `koanf:"panelid" doc:"panel of that dashboard the annotations are scoped to; 0: the whole dashboard"`
	AllFieldsAsTags bool              `koanf:"allfieldsastags" doc:"also tag each annotation with the event's output field values and tags"`
	CustomHeaders   map[string]string `koanf:"customheaders" secret:"true" doc:"extra request headers (env: \"X-A:1,X-B:2\")"`
	CheckCert       bool              `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS       bool              `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.HostPort == "" {
		return nil
	}
	if err := outputs.ValidateURL("grafana.hostport", c.HostPort); err != nil {
		return err
	}
	if c.APIKey == "" {
		return fmt.Errorf("grafana.apikey is required with grafana.hostport")
	}
	return outputs.CheckHeaders("grafana.customheaders", c.CustomHeaders)
}

func init() {
	s := outputs.Define("grafana", "grafana", defaults,
		func(c *Config) bool { return c.HostPort != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "add a Grafana annotation"
	outputs.Register(s)
}

// New builds the output; Grafana answers 200 {"message":"Annotation added"}.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "grafana", URL: strings.TrimSuffix(c.HostPort, "/") + "/api/annotations",
		ContentType: "application/json", Headers: falcopost.With(c.CustomHeaders, "Authorization", "Bearer "+c.APIKey),
		CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		Body: func(ev *event.Event) ([]byte, error) { return chat.EncodeJSON(c.Build(ev)) }}, env)
}

// Annotation is the annotations API's body.
type Annotation struct {
	DashboardID int      `json:"dashboardId,omitempty"`
	PanelID     int      `json:"panelId,omitempty"`
	Time        int64    `json:"time"`
	TimeEnd     int64    `json:"timeEnd"`
	Tags        []string `json:"tags"`
	Text        string   `json:"text"`
}

// Build returns the annotation for ev. With allfieldsastags, output field values (of any
// JSON type, sorted by field name) and the event's tags follow the five fixed tags.
func (c *Config) Build(ev *event.Event) Annotation {
	ms := ev.Time.UnixMilli()
	tags := []string{"falco", ev.Priority.String(), ev.Rule, ev.Source, ev.Hostname}
	if c.AllFieldsAsTags {
		for _, k := range chat.SortedKeys(ev.OutputFields) {
			if v := chat.FieldValue(ev.OutputFields[k]); v != "" && v != "null" {
				tags = append(tags, v)
			}
		}
		evTags := append([]string(nil), ev.Tags...)
		sort.Strings(evTags)
		tags = append(tags, evTags...)
	}
	return Annotation{DashboardID: c.DashboardID, PanelID: c.PanelID, Time: ms, TimeEnd: ms, Tags: tags, Text: ev.Output}
}
