// Package kubeless invokes a Kubeless function with each event's Falco JSON, as
// falcosidekick's Kubeless output does: POST to the function's service,
// http://<function>.<namespace>.svc.cluster.local:<port>/ from inside the cluster, or,
// with kubeless.kubeconfig set, through the Kubernetes API server's service proxy
// (/api/v1/namespaces/<namespace>/services/<function>:<port>/proxy/).
//
// Kubeless is deprecated upstream: the project was archived in 2021 and falcosidekick keeps
// the output only for existing installations; saker does the same.
package kubeless

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
	"github.com/saker-dev/saker/outputs/internal/kubeapi"
)

// Config is the kubeless.* section.
type Config struct {
	Function   string `koanf:"function" doc:"function to invoke; setting it enables the output"`
	Namespace  string `koanf:"namespace" doc:"namespace of the function (required)"`
	Port       int    `koanf:"port" doc:"port of the function's service"`
	Kubeconfig string `koanf:"kubeconfig" doc:"kubeconfig file: when set, the function is called through the API server's service proxy (saker outside the cluster); empty: by its in-cluster service name"`
	CheckCert  bool   `koanf:"checkcert" doc:"verify the server's TLS certificate (in-cluster calls)"`
	MutualTLS  bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*; in-cluster calls)"`
}

func defaults() *Config { return &Config{Port: 8080, CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Function == "" {
		return nil
	}
	if c.Namespace == "" {
		return errors.New("kubeless.namespace must be set: the namespace of kubeless.function")
	}
	if err := c.service().Validate("kubeless.function", "kubeless.port"); err != nil {
		return err
	}
	return outputs.ValidateURL("kubeless.function", c.URL())
}

func (c *Config) service() falcopost.Service {
	return falcopost.Service{Name: c.Function, Namespace: c.Namespace, Suffix: ".svc.cluster.local", Port: c.Port}
}

// URL is the function's in-cluster URL.
func (c *Config) URL() string { return c.service().URL("/") }

// ProxyPath is the function's path on the API server's service proxy.
func (c *Config) ProxyPath() string {
	return "/api/v1/namespaces/" + c.Namespace + "/services/" + c.Function + ":" + strconv.Itoa(c.Port) + "/proxy/"
}

func init() {
	s := outputs.Define("kubeless", "kubeless", defaults,
		func(c *Config) bool { return c.Function != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "invoke a Kubeless function with the event's Falco JSON (Kubeless is deprecated upstream)"
	outputs.Register(s)
}

// New builds the output: through the API server when kubeless.kubeconfig is set, else to
// the in-cluster service.
func New(c *Config, env outputs.Env) (delivery.Sender, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Kubeconfig != "" {
		kc, err := kubeapi.FromKubeconfig(c.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeless.kubeconfig: %w", err)
		}
		api, err := kubeapi.New(kc, env)
		if err != nil {
			return nil, fmt.Errorf("kubeless: %w", err)
		}
		return &viaAPI{cfg: c, api: api}, nil
	}
	return direct(c, c.URL(), env)
}

// direct posts to url, the function's service.
func direct(c *Config, url string, env outputs.Env) (*falcopost.Output, error) {
	return falcopost.New(falcopost.Options{Name: "kubeless", URL: url, ContentType: "application/json",
		CheckCert: c.CheckCert, MutualTLS: c.MutualTLS, EventHeaders: c.headers}, env)
}

// headers are falcosidekick's: the event's id, its type and the function's namespace.
func (c *Config) headers(ev *event.Event) map[string]string {
	return map[string]string{"Event-Id": falcopost.EventID(ev), "Event-Type": "falco", "Event-Namespace": c.Namespace}
}

// viaAPI calls the function through the API server's service proxy.
type viaAPI struct {
	cfg *Config
	api *kubeapi.Client
}

func (v *viaAPI) Name() string { return "kubeless" }

// Send posts the event; the API server answers 503 while the function has no ready
// endpoint, which the engine retries.
func (v *viaAPI) Send(ctx context.Context, ev *event.Event) error {
	_, err := v.api.Do(ctx, kubeapi.Request{Method: http.MethodPost, Path: v.cfg.ProxyPath(), ContentType: "application/json",
		Body: ev.JSON(), Headers: v.cfg.headers(ev)})
	if err != nil {
		return fmt.Errorf("kubeless: %w", err)
	}
	return nil
}
