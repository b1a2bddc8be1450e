// Package openobserve sends each event's Falco JSON to an OpenObserve stream (the _multi
// ingestion API), as falcosidekick does, and reports documents OpenObserve refused.
package openobserve

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the openobserve.* section.
type Config struct {
	HostPort         string            `koanf:"hostport" doc:"OpenObserve address, http(s)://host:port; setting it enables the output"`
	OrganizationName string            `koanf:"organizationname" doc:"organization the stream belongs to"`
	StreamName       string            `koanf:"streamname" doc:"stream the events go to"`
	Username         string            `koanf:"username" doc:"user for HTTP basic authentication"`
	Password         string            `koanf:"password" secret:"true" doc:"password (or ingestion token) for HTTP basic authentication"`
	CustomHeaders    map[string]string `koanf:"customheaders" secret:"true" doc:"extra request headers (env: \"X-A:1,X-B:2\")"`
	CheckCert        bool              `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS        bool              `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config {
	return &Config{OrganizationName: "default", StreamName: "falco", CheckCert: true}
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.HostPort == "" {
		return nil
	}
	if err := outputs.ValidateURL("openobserve.hostport", c.HostPort); err != nil {
		return err
	}
	for key, v := range map[string]string{"openobserve.organizationname": c.OrganizationName, "openobserve.streamname": c.StreamName} {
		if v == "" || strings.ContainsAny(v, "/?# ") {
			return fmt.Errorf("%s must be a name, got %q", key, v)
		}
	}
	return outputs.CheckHeaders("openobserve.customheaders", c.CustomHeaders)
}

func init() {
	s := outputs.Define("openobserve", "openobserve", defaults,
		func(c *Config) bool { return c.HostPort != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "send events to an OpenObserve stream"
	outputs.Register(s)
}

// url is the stream's _multi ingestion API.
func (c *Config) url() string {
	return strings.TrimSuffix(c.HostPort, "/") + "/api/" + c.OrganizationName + "/" + c.StreamName + "/_multi"
}

// New builds the output: the event's Falco JSON posted to the stream.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "openobserve", URL: c.url(), Headers: falcopost.BasicAuth(c.CustomHeaders, c.Username, c.Password),
		CheckCert: c.CheckCert, MutualTLS: c.MutualTLS, Answer: checkAnswer}, env)
}

// checkAnswer reads OpenObserve's answer: it is 200 even when the document was refused, and
// says so per stream ({"status":[{"successful":0,"failed":1,"error":...}]}): such a refusal
// is a permanent error for the event.
func checkAnswer(body []byte) error {
	var answer struct {
		Status []struct {
			Name   string `json:"name"`
			Failed int    `json:"failed"`
			Error  string `json:"error"`
		} `json:"status"`
	}
	if json.Unmarshal(body, &answer) == nil {
		for _, s := range answer.Status {
			if s.Failed > 0 {
				return delivery.Permanent(fmt.Errorf("stream %s refused the event: %s", s.Name, s.Error))
			}
		}
	}
	return nil
}
