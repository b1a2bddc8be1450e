// Package dynatrace sends each event to Dynatrace's log ingest API (v2), as falcosidekick
// does: the rule as the event name, the priority as the severity, the output line, fields and
// tags as content, and well-known fields and MITRE tags mapped onto Dynatrace's semantic
// attributes.
package dynatrace

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the dynatrace.* section.
type Config struct {
	APIToken  string `koanf:"apitoken" secret:"true" doc:"API token with the logs.ingest scope; with apiurl, setting it enables the output"`
	APIURL    string `koanf:"apiurl" doc:"environment API URL: https://ENVIRONMENTID.live.dynatrace.com/api (SaaS) or https://DOMAIN/e/ENVIRONMENTID/api (Managed)"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.APIToken == "" {
		return nil
	}
	if c.APIURL == "" {
		return fmt.Errorf("dynatrace.apiurl is required with dynatrace.apitoken")
	}
	return outputs.ValidateURL("dynatrace.apiurl", c.APIURL)
}

func init() {
	s := outputs.Define("dynatrace", "dynatrace", defaults,
		func(c *Config) bool { return c.APIToken != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "send each event to Dynatrace log ingest"
	outputs.Register(s)
}

// New builds the output. Dynatrace answers 204 (200 with a warning for a partly accepted
// record), 400 for an invalid one and 401 for a bad token (permanent), 429 and 503 when
// throttled (retried).
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "dynatrace", URL: strings.TrimSuffix(c.APIURL, "/") + "/v2/logs/ingest",
		Headers: map[string]string{"Authorization": "Api-Token " + c.APIToken}, CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		Body: func(ev *event.Event) ([]byte, error) { return chat.EncodeJSON([]map[string]any{Build(ev)}) }}, env)
}

// Content is a log record's content.
type Content struct {
	Output       string         `json:"output"`
	OutputFields map[string]any `json:"output_fields"`
	Tags         []string       `json:"tags,omitempty"`
}

// semanticAttributes maps Falco output fields onto Dynatrace's semantic attributes.
var semanticAttributes = map[string]string{
	"container.id":        "container.id",
	"container.name":      "container.name",
	"container.image":     "container.image.name",
	"k8s.ns.name":         "k8s.namespace.name",
	"ka.target.namespace": "k8s.namespace.name",
	"k8s.pod.name":        "k8s.pod.name",
	"k8s.pod.id":          "k8s.pod.uid",
	"proc.name":           "process.executable.name",
	"span.id":             "span.id",
}

var (
	mitreTechnique = regexp.MustCompile(`T\d+\.?\d*`) // T1070, T1055.008
	mitreTactic    = regexp.MustCompile(`mitre_\w+`)  // mitre_execution
)

// Build returns the log record for ev (the API takes a list of them). Fields mapped to
// semantic attributes are written as text whatever their JSON type; falcosidekick crashed
// on a non-string one.
func Build(ev *event.Event) map[string]any {
	r := map[string]any{
		"timestamp": ev.Time.UTC().Format(time.RFC3339Nano), "event.id": ev.UUID, "event.name": ev.Rule,
		"event.provider": "Falco", "severity": ev.Priority.String(), "host.name": ev.Hostname, "log.source": ev.Source,
		"content": Content{Output: ev.Output, OutputFields: ev.OutputFields, Tags: ev.Tags},
	}
	for field, attr := range semanticAttributes {
		if v, ok := ev.OutputFields[field]; ok && v != nil {
			r[attr] = chat.FieldValue(v)
		}
	}
	for _, tag := range ev.Tags {
		switch {
		case mitreTechnique.MatchString(tag):
			r["mitre.technique"] = tag
		case mitreTactic.MatchString(tag):
			r["mitre.tactic"] = tag
		}
	}
	for k, v := range r {
		if v == "" {
			delete(r, k)
		}
	}
	return r
}
