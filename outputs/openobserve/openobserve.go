// Package openobserve sends each event's Falco JSON to an OpenObserve stream (the _multi
// ingestion API), as falcosidekick does, and reports documents OpenObserve refused.
package openobserve

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
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

// OpenObserve is the output.
type OpenObserve struct {
	url     string
	headers map[string]string
	client  *httpout.Client
}

// New builds the output.
func New(c *Config, env outputs.Env) (*OpenObserve, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	client, err := env.HTTPClient(c.CheckCert, c.MutualTLS, c.CustomHeaders)
	if err != nil {
		return nil, fmt.Errorf("openobserve: %w", err)
	}
	headers := map[string]string{}
	if c.Username != "" || c.Password != "" {
		headers["Authorization"] = httpout.BasicAuth(c.Username, c.Password)
	}
	return &OpenObserve{url: strings.TrimSuffix(c.HostPort, "/") + "/api/" + c.OrganizationName + "/" + c.StreamName + "/_multi",
		headers: headers, client: client}, nil
}

// Name implements delivery.Output.
func (o *OpenObserve) Name() string { return "openobserve" }

// Send posts the event's Falco JSON. OpenObserve answers 200 even when it refused the
// document, saying so per stream ({"status":[{"successful":0,"failed":1,"error":...}]}): such
// a refusal is a permanent error for the event.
func (o *OpenObserve) Send(ctx context.Context, ev *event.Event) error {
	resp, err := o.client.Do(ctx, httpout.Request{URL: o.url, ContentType: "application/json; charset=utf-8",
		Headers: o.headers, Body: ev.JSON()})
	if err != nil {
		return fmt.Errorf("openobserve: %w", err)
	}
	var answer struct {
		Status []struct {
			Name   string `json:"name"`
			Failed int    `json:"failed"`
			Error  string `json:"error"`
		} `json:"status"`
	}
	if json.Unmarshal(resp.Body, &answer) == nil {
		for _, s := range answer.Status {
			if s.Failed > 0 {
				return delivery.Permanent(fmt.Errorf("openobserve: stream %s refused the event: %s", s.Name, s.Error))
			}
		}
	}
	return nil
}
