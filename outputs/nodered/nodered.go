// Package nodered sends each event's Falco JSON to a Node-RED "http in" node, with the basic
// authentication of Node-RED's httpNodeAuth setting and custom headers, as falcosidekick's
// Node-RED output does.
package nodered

import (
	"net/http"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the nodered.* section.
type Config struct {
	Address       string            `koanf:"address" secret:"url" doc:"URL of the flow's http in node (http://node-red:1880/falco); setting it enables the output"`
	User          string            `koanf:"user" doc:"basic authentication user (Node-RED's httpNodeAuth; with nodered.password)"`
	Password      string            `koanf:"password" secret:"true" doc:"basic authentication password"`
	CustomHeaders map[string]string `koanf:"customheaders" secret:"true" doc:"extra request headers (env: \"X-A:1,X-B:2\")"`
	CheckCert     bool              `koanf:"checkcert" doc:"verify the server's TLS certificate"`
}

func defaults() *Config { return &Config{CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Address == "" {
		return nil
	}
	if err := outputs.ValidateURL("nodered.address", c.Address); err != nil {
		return err
	}
	if err := falcopost.Pair("nodered.user", c.User, "nodered.password", c.Password); err != nil {
		return err
	}
	return outputs.CheckHeaders("nodered.customheaders", c.CustomHeaders)
}

func init() {
	s := outputs.Define("nodered", "nodered", defaults,
		func(c *Config) bool { return c.Address != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "POST the event's Falco JSON to a Node-RED http in node"
	outputs.Register(s)
}

// New builds the output.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "nodered", URL: c.Address,
		Headers: falcopost.BasicAuth(c.CustomHeaders, c.User, c.Password), CheckCert: c.CheckCert,
		// Node-RED listens before its flows have started, and a full deploy removes and adds
		// the http in routes again: until then it answers "Cannot POST" 404s.
		TransientStatus: []int{http.StatusNotFound}}, env)
}
