// Package talon sends each event's Falco JSON to Falco Talon, the response engine that runs
// actions for Falco rules, as falcosidekick's Talon output does.
package talon

import (
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the talon.* section.
type Config struct {
	Address   string `koanf:"address" secret:"url" doc:"Falco Talon's URL (http://falco-talon:2803); setting it enables the output"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
}

func defaults() *Config { return &Config{CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Address == "" {
		return nil
	}
	return outputs.ValidateURL("talon.address", c.Address)
}

func init() {
	s := outputs.Define("talon", "talon", defaults,
		func(c *Config) bool { return c.Address != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "POST the event's Falco JSON to Falco Talon"
	outputs.Register(s)
}

// New builds the output.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "talon", URL: c.Address, CheckCert: c.CheckCert}, env)
}
