// Package webhook sends each event's Falco JSON to an HTTP endpoint, as falcosidekick's
// webhook output does (same keys, same body).
package webhook

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// Config is the webhook.* section.
type Config struct {
	Address       string            `koanf:"address" secret:"url" doc:"URL the events are sent to; setting it enables the output (its path and query are kept out of error texts: they may hold a token)"`
	Method        string            `koanf:"method" doc:"POST or PUT"`
	CustomHeaders map[string]string `koanf:"customheaders" secret:"true" doc:"extra request headers (env: \"X-A:1,X-B:2\")"`
	CheckCert     bool              `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS     bool              `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{Method: http.MethodPost, CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Address == "" {
		return nil
	}
	if err := outputs.ValidateURL("webhook.address", c.Address); err != nil {
		return err
	}
	if m := strings.ToUpper(c.Method); m != http.MethodPost && m != http.MethodPut {
		return fmt.Errorf("webhook.method must be POST or PUT, got %q", c.Method)
	}
	return outputs.CheckHeaders("webhook.customheaders", c.CustomHeaders)
}

func init() {
	s := outputs.Define("webhook", "webhook", defaults,
		func(c *Config) bool { return c.Address != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "POST (or PUT) the event's Falco JSON to a URL"
	// One request per event to a receiver that is usually an internal service: many
	// requests in flight, each on its own keep-alive connection (never pipelined), is what
	// keeps delivery up with ingest (see docs/operations.md).
	s.Concurrency = 128
	outputs.Register(s)
}

// Webhook is the output.
type Webhook struct {
	cfg    Config
	client *httpout.Client
}

// New builds the output.
func New(c *Config, env outputs.Env) (*Webhook, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	client, err := env.HTTPClient(c.CheckCert, c.MutualTLS, c.CustomHeaders)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	cfg := *c
	cfg.Method = strings.ToUpper(cfg.Method)
	return &Webhook{cfg: cfg, client: client}, nil
}

// Name implements delivery.Output.
func (w *Webhook) Name() string { return "webhook" }

// Send posts the event JSON.
func (w *Webhook) Send(ctx context.Context, ev *event.Event) error {
	err := w.client.Send(ctx, httpout.Request{Method: w.cfg.Method, URL: w.cfg.Address,
		ContentType: "application/json; charset=utf-8", Body: ev.JSON()})
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return nil
}
