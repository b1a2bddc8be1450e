// Package sumologic sends each event's Falco JSON to a Sumo Logic HTTP Logs source, with the
// source category, host and name overrides as X-Sumo-* headers, as falcosidekick does.
package sumologic

import (
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
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

// headers are the source overrides as X-Sumo-* headers.
func (c *Config) headers() map[string]string {
	headers := map[string]string{}
	for h, v := range map[string]string{"X-Sumo-Category": c.SourceCategory, "X-Sumo-Host": c.SourceHost, "X-Sumo-Name": c.Name} {
		headers = falcopost.With(headers, h, v)
	}
	return headers
}

// New builds the output: the event's Falco JSON posted to the source (it answers 200).
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "sumologic", URL: c.ReceiverURL, LogURL: chat.SafeURL(c.ReceiverURL),
		Headers: c.headers(), CheckCert: c.CheckCert, MutualTLS: c.MutualTLS}, env)
}
