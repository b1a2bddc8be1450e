// Package tekton sends each event's Falco JSON to a Tekton Triggers EventListener, which can
// start a pipeline from it, as falcosidekick's Tekton output does.
package tekton

import (
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the tekton.* section.
type Config struct {
	EventListener string `koanf:"eventlistener" secret:"url" doc:"the EventListener's URL (http://el-falco-listener.tekton:8080); setting it enables the output"`
	CheckCert     bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
}

func defaults() *Config { return &Config{CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.EventListener == "" {
		return nil
	}
	return outputs.ValidateURL("tekton.eventlistener", c.EventListener)
}

func init() {
	s := outputs.Define("tekton", "tekton", defaults,
		func(c *Config) bool { return c.EventListener != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "POST the event's Falco JSON to a Tekton EventListener"
	outputs.Register(s)
}

// New builds the output.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "tekton", URL: c.EventListener, CheckCert: c.CheckCert}, env)
}
