// Package gcpcloudrun sends each event's Falco JSON to a Google Cloud Run service (or a
// 2nd gen Cloud Function) with a bearer token, as falcosidekick's Cloud Run output does.
package gcpcloudrun

import (
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the gcp.cloudrun.* section.
type Config struct {
	Endpoint  string `koanf:"endpoint" doc:"the service's URL (https://falco-handler-abc123-uc.a.run.app); setting it enables the output"`
	JWT       string `koanf:"jwt" secret:"true" doc:"identity token sent as Authorization: Bearer (services that allow unauthenticated calls need none)"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
}

func defaults() *Config { return &Config{CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Endpoint == "" {
		return nil
	}
	if err := outputs.ValidateURL("gcp.cloudrun.endpoint", c.Endpoint); err != nil {
		return err
	}
	return outputs.CheckHeaders("gcp.cloudrun.jwt", c.headers())
}

func (c *Config) headers() map[string]string {
	if c.JWT == "" {
		return nil
	}
	return map[string]string{"Authorization": "Bearer " + c.JWT}
}

func init() {
	s := outputs.Define("gcpcloudrun", "gcp.cloudrun", defaults,
		func(c *Config) bool { return c.Endpoint != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "POST the event's Falco JSON to a Google Cloud Run service"
	outputs.Register(s)
}

// New builds the output.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "gcpcloudrun", URL: c.Endpoint, Headers: c.headers(), CheckCert: c.CheckCert}, env)
}
