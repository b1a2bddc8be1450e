// Package sumologic sends each event's Falco JSON to a Sumo Logic HTTP Logs source, with the
// source category, host and name overrides as X-Sumo-* headers, as falcosidekick does.
package sumologic

import (
	"context"
	"fmt"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
)

// Config is the sumologic.* section.
type Config struct {
	ReceiverURL    string `koanf:"receiverurl" secret:"true" doc:"the HTTP source's URL (https://endpoint.collection.sumologic.com/receiver/v1/http/TOKEN: it holds the credential); setting it enables the output"`
	SourceCategory string `koanf:"sourcecategory" doc:"overrides the source's category (X-Sumo-Category)"`
	SourceHost     string `koanf:"sourcehost" doc:"overrides the source's host (X-Sumo-Host)"`
	Name           string `koanf:"name" doc:"overrides the source's name (X-Sumo-Name)"`
	CheckCert      bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS      bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.ReceiverURL == "" {
		return nil
	}
	return outputs.ValidateURL("sumologic.receiverurl", chat.SafeURL(c.ReceiverURL))
}

func init() {
	s := outputs.Define("sumologic", "sumologic", defaults,
		func(c *Config) bool { return c.ReceiverURL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "send each event to a Sumo Logic HTTP source"
	outputs.Register(s)
}

// SumoLogic is the output.
type SumoLogic struct {
	url, logURL string
	headers     map[string]string
	client      *httpout.Client
}

// New builds the output.
func New(c *Config, env outputs.Env) (*SumoLogic, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	client, err := env.HTTPClient(c.CheckCert, c.MutualTLS, nil)
	if err != nil {
		return nil, fmt.Errorf("sumologic: %w", err)
	}
	headers := map[string]string{}
	for h, v := range map[string]string{"X-Sumo-Category": c.SourceCategory, "X-Sumo-Host": c.SourceHost, "X-Sumo-Name": c.Name} {
		if v != "" {
			headers[h] = v
		}
	}
	return &SumoLogic{url: c.ReceiverURL, logURL: chat.SafeURL(c.ReceiverURL), headers: headers, client: client}, nil
}

// Name implements delivery.Output.
func (s *SumoLogic) Name() string { return "sumologic" }

// Send posts the event's Falco JSON; the source answers 200.
func (s *SumoLogic) Send(ctx context.Context, ev *event.Event) error {
	if err := s.client.Send(ctx, httpout.Request{URL: s.url, LogURL: s.logURL, ContentType: "application/json; charset=utf-8",
		Headers: s.headers, Body: ev.JSON()}); err != nil {
		return fmt.Errorf("sumologic: %w", err)
	}
	return nil
}
