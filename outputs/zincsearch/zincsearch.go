// Package zincsearch indexes each event's Falco JSON as a ZincSearch document, as
// falcosidekick does.
package zincsearch

import (
	"context"
	"fmt"
	"strings"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// Config is the zincsearch.* section.
type Config struct {
	HostPort  string `koanf:"hostport" doc:"ZincSearch address, http(s)://host:port; setting it enables the output"`
	Index     string `koanf:"index" doc:"index the events are written to"`
	Username  string `koanf:"username" doc:"user for HTTP basic authentication"`
	Password  string `koanf:"password" secret:"true" doc:"password for HTTP basic authentication"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{Index: "falco", CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.HostPort == "" {
		return nil
	}
	if err := outputs.ValidateURL("zincsearch.hostport", c.HostPort); err != nil {
		return err
	}
	if c.Index == "" || strings.ContainsAny(c.Index, "/?# ") {
		return fmt.Errorf("zincsearch.index must be an index name, got %q", c.Index)
	}
	return nil
}

func init() {
	s := outputs.Define("zincsearch", "zincsearch", defaults,
		func(c *Config) bool { return c.HostPort != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "index events in ZincSearch"
	outputs.Register(s)
}

// ZincSearch is the output.
type ZincSearch struct {
	url     string
	headers map[string]string
	client  *httpout.Client
}

// New builds the output.
func New(c *Config, env outputs.Env) (*ZincSearch, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	client, err := env.HTTPClient(c.CheckCert, c.MutualTLS, nil)
	if err != nil {
		return nil, fmt.Errorf("zincsearch: %w", err)
	}
	headers := map[string]string{}
	if c.Username != "" || c.Password != "" {
		headers["Authorization"] = httpout.BasicAuth(c.Username, c.Password)
	}
	return &ZincSearch{url: strings.TrimSuffix(c.HostPort, "/") + "/api/" + c.Index + "/_doc", headers: headers, client: client}, nil
}

// Name implements delivery.Output.
func (z *ZincSearch) Name() string { return "zincsearch" }

// Send indexes the event's Falco JSON; ZincSearch answers 200 {"id": ...}.
func (z *ZincSearch) Send(ctx context.Context, ev *event.Event) error {
	if err := z.client.Send(ctx, httpout.Request{URL: z.url, ContentType: "application/json; charset=utf-8",
		Headers: z.headers, Body: ev.JSON()}); err != nil {
		return fmt.Errorf("zincsearch: %w", err)
	}
	return nil
}
