// Package zincsearch indexes each event's Falco JSON as a ZincSearch document, as
// falcosidekick does.
package zincsearch

import (
	"fmt"
	"strings"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the zincsearch.* section.
type Config struct {
	HostPort  string `koanf:"hostport" doc:"ZincSearch address, http(s)://host:port; setting it enables the output"`
	Index     string `koanf:"index" doc:"index the events are written to"`
	Username  string `koanf:"username" doc:"user for HTTP basic authentication"`
	Password  string `koanf:"password" secret:"true" doc:"password for HTTP basic authentication"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{Index: "falco", CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.HostPort == "" {
		return nil
	}
	if err := outputs.ValidateURL("zincsearch.hostport", c.HostPort); err != nil {
		return err
	}
	if c.Index == "" || strings.ContainsAny(c.Index, "/?# ") {
		return fmt.Errorf("zincsearch.index must be an index name, got %q", c.Index)
	}
	return nil
}

func init() {
	s := outputs.Define("zincsearch", "zincsearch", defaults,
		func(c *Config) bool { return c.HostPort != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "index events in ZincSearch"
	outputs.Register(s)
}

// url is the document API of the index.
func (c *Config) url() string {
	return strings.TrimSuffix(c.HostPort, "/") + "/api/" + c.Index + "/_doc"
}

// New builds the output: the event's Falco JSON posted as a document (ZincSearch answers
// 200 {"id": ...}).
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "zincsearch", URL: c.url(), Headers: falcopost.BasicAuth(nil, c.Username, c.Password),
		CheckCert: c.CheckCert, MutualTLS: c.MutualTLS}, env)
}
