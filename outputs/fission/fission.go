// Package fission invokes a Fission function with each event's Falco JSON through the
// router's in-cluster service, as falcosidekick's Fission output does:
// http://<routerservice>.<routernamespace>.svc.cluster.local:<routerport>/fission-function/<function>.
package fission

import (
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the fission.* section.
type Config struct {
	Function        string `koanf:"function" doc:"function to invoke; setting it enables the output"`
	RouterNamespace string `koanf:"routernamespace" doc:"namespace of the Fission router service; empty: routerservice is used as the host as it is"`
	RouterService   string `koanf:"routerservice" doc:"service of the Fission router (or, with routernamespace empty, any host name or address of it)"`
	RouterPort      int    `koanf:"routerport" doc:"port of the router service"`
	CheckCert       bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS       bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config {
	return &Config{RouterNamespace: "fission", RouterService: "router", RouterPort: 80, CheckCert: true}
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Function == "" {
		return nil
	}
	if err := c.router().Validate("fission.routerservice", "fission.routerport"); err != nil {
		return err
	}
	return outputs.ValidateURL("fission.function", c.URL())
}

func (c *Config) router() falcopost.Service {
	return falcopost.Service{Name: c.RouterService, Namespace: c.RouterNamespace, Suffix: ".svc.cluster.local", Port: c.RouterPort}
}

// URL is the function's URL on the router.
func (c *Config) URL() string { return c.router().URL("/fission-function/" + c.Function) }

func init() {
	s := outputs.Define("fission", "fission", defaults,
		func(c *Config) bool { return c.Function != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "invoke a Fission function with the event's Falco JSON"
	outputs.Register(s)
}

// New builds the output.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "fission", URL: c.URL(), ContentType: "application/json",
		CheckCert: c.CheckCert, MutualTLS: c.MutualTLS, EventHeaders: eventID}, env)
}

// eventID is falcosidekick's Event-Id header (see falcopost.EventID).
func eventID(ev *event.Event) map[string]string {
	return map[string]string{"Event-Id": falcopost.EventID(ev)}
}
