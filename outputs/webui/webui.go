// Package webui sends each event to the Falcosidekick UI (falcosidekick-ui), wrapped as the
// UI's API takes it: {"event": <Falco JSON>, "outputs": [the enabled outputs]}.
package webui

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the webui.* section.
type Config struct {
	URL       string `koanf:"url" doc:"the UI's event API (http://falcosidekick-ui:2802/api/v1/); setting it enables the output"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.URL == "" {
		return nil
	}
	return outputs.ValidateURL("webui.url", c.URL)
}

func init() {
	s := outputs.Define("webui", "webui", defaults,
		func(c *Config) bool { return c.URL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "send each event to the Falcosidekick UI"
	outputs.Register(s)
}

// New builds the output. The payload lists env.Outputs, the outputs saker delivers to
// (this one at least).
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	names := slices.Clone(env.Outputs)
	if !slices.Contains(names, "webui") {
		names = append(names, "webui")
	}
	list, err := json.Marshal(names)
	if err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	return falcopost.New(falcopost.Options{Name: "webui", URL: c.URL, CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		Body: func(ev *event.Event) ([]byte, error) { return Payload(ev, list), nil }}, env)
}

// Payload is the UI's {"event", "outputs"} body around the event's Falco JSON; outputs is a
// JSON list of names.
func Payload(ev *event.Event, outputs []byte) []byte {
	js := ev.JSON()
	b := make([]byte, 0, len(js)+len(outputs)+24)
	b = append(b, `{"event":`...)
	b = append(b, js...)
	b = append(b, `,"outputs":`...)
	b = append(b, outputs...)
	return append(b, '}')
}
