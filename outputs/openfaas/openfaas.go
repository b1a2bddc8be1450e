// Package openfaas invokes an OpenFaaS function with each event's Falco JSON through the
// gateway's in-cluster service, as falcosidekick's OpenFaaS output does:
// http://<gatewayservice>.<gatewaynamespace>:<gatewayport>/function/<functionname>.<functionnamespace>.
package openfaas

import (
	"errors"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the openfaas.* section.
type Config struct {
	FunctionName      string `koanf:"functionname" doc:"function to invoke; setting it enables the output"`
	FunctionNamespace string `koanf:"functionnamespace" doc:"namespace of the function"`
	GatewayService    string `koanf:"gatewayservice" doc:"service of the OpenFaaS gateway (or, with gatewaynamespace empty, any host name or address of it)"`
	GatewayPort       int    `koanf:"gatewayport" doc:"port of the gateway service"`
	GatewayNamespace  string `koanf:"gatewaynamespace" doc:"namespace of the gateway service; empty: gatewayservice is used as the host as it is"`
	Kubeconfig        string `koanf:"kubeconfig" doc:"not supported: saker calls the gateway directly, never through the Kubernetes API server; must be empty"`
	CheckCert         bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS         bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config {
	return &Config{FunctionNamespace: "openfaas-fn", GatewayService: "gateway", GatewayPort: 8080, GatewayNamespace: "openfaas", CheckCert: true}
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.FunctionName == "" {
		return nil
	}
	if c.Kubeconfig != "" {
		return errors.New("openfaas.kubeconfig is not supported: saker calls the gateway by its in-cluster name " +
			"(or set openfaas.gatewayservice to a reachable host and openfaas.gatewaynamespace to \"\"); leave the key empty")
	}
	if err := c.gateway().Validate("openfaas.gatewayservice", "openfaas.gatewayport"); err != nil {
		return err
	}
	return outputs.ValidateURL("openfaas.functionname", c.URL())
}

func (c *Config) gateway() falcopost.Service {
	return falcopost.Service{Name: c.GatewayService, Namespace: c.GatewayNamespace, Port: c.GatewayPort}
}

// URL is the function's URL on the gateway.
func (c *Config) URL() string {
	fn := c.FunctionName
	if c.FunctionNamespace != "" {
		fn += "." + c.FunctionNamespace
	}
	return c.gateway().URL("/function/" + fn)
}

func init() {
	s := outputs.Define("openfaas", "openfaas", defaults,
		func(c *Config) bool { return c.FunctionName != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "invoke an OpenFaaS function with the event's Falco JSON"
	outputs.Register(s)
}

// New builds the output.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "openfaas", URL: c.URL(), CheckCert: c.CheckCert, MutualTLS: c.MutualTLS}, env)
}
