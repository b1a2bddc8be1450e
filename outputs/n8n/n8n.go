// Package n8n sends each event's Falco JSON to an n8n workflow's Webhook node, with the
// basic or header authentication the node asks for, as falcosidekick's n8n output does.
package n8n

import (
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the n8n.* section.
type Config struct {
	Address         string `koanf:"address" secret:"url" doc:"the Webhook node's production URL (https://n8n.example/webhook/ID); setting it enables the output"`
	User            string `koanf:"user" doc:"user of the node's basic authentication (with n8n.password)"`
	Password        string `koanf:"password" secret:"true" doc:"password of the node's basic authentication"`
	HeaderAuthName  string `koanf:"headerauthname" doc:"header of the node's header authentication (with n8n.headerauthvalue)"`
	HeaderAuthValue string `koanf:"headerauthvalue" secret:"true" doc:"value of that header"`
	CheckCert       bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
}

func defaults() *Config { return &Config{CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Address == "" {
		return nil
	}
	if err := outputs.ValidateURL("n8n.address", c.Address); err != nil {
		return err
	}
	if err := falcopost.Pair("n8n.user", c.User, "n8n.password", c.Password); err != nil {
		return err
	}
	if err := falcopost.Pair("n8n.headerauthname", c.HeaderAuthName, "n8n.headerauthvalue", c.HeaderAuthValue); err != nil {
		return err
	}
	return outputs.CheckHeaders("n8n.headerauthname", c.headers())
}

func (c *Config) headers() map[string]string {
	return falcopost.BasicAuth(falcopost.With(nil, c.HeaderAuthName, c.HeaderAuthValue), c.User, c.Password)
}

func init() {
	s := outputs.Define("n8n", "n8n", defaults,
		func(c *Config) bool { return c.Address != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "POST the event's Falco JSON to an n8n Webhook node"
	outputs.Register(s)
}

// New builds the output.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "n8n", URL: c.Address, Headers: c.headers(), CheckCert: c.CheckCert}, env)
}
