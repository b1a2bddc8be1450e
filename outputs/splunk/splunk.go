// Package splunk sends each event to a Splunk HTTP Event Collector: the event's Falco JSON
// as the HEC event, with its time, host and sourcetype, as falcosidekick sends it.
package splunk

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the splunk.* section.
type Config struct {
	Host          string            `koanf:"host" doc:"HEC event endpoint URL (https://splunk.example:8088/services/collector/event); setting it enables the output"`
	Token         string            `koanf:"token" secret:"true" doc:"HEC token (sent as Authorization: Splunk TOKEN)"`
	Index         string            `koanf:"index" doc:"index the events go to; empty: the token's default index"`
	SourceType    string            `koanf:"sourcetype" doc:"sourcetype of the events"`
	CustomHeaders map[string]string `koanf:"customheaders" secret:"true" doc:"extra request headers (env: \"X-A:1,X-B:2\")"`
	CheckCert     bool              `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS     bool              `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{SourceType: "falcosidekick", CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Host == "" {
		return nil
	}
	if err := outputs.ValidateURL("splunk.host", c.Host); err != nil {
		return err
	}
	if c.Token == "" {
		return fmt.Errorf("splunk.token is required with splunk.host")
	}
	return outputs.CheckHeaders("splunk.customheaders", c.CustomHeaders)
}

func init() {
	s := outputs.Define("splunk", "splunk", defaults,
		func(c *Config) bool { return c.Host != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "send events to a Splunk HTTP Event Collector"
	outputs.Register(s)
}

// New builds the output. HEC answers 200 {"text":"Success","code":0}; 400 for a malformed
// event or unknown index and 401/403 for a bad token are permanent, 503 (server busy) is
// retried.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "splunk", URL: c.Host,
		Headers:   falcopost.With(c.CustomHeaders, "Authorization", "Splunk "+c.Token),
		CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		Body: func(ev *event.Event) ([]byte, error) { return c.Payload(ev), nil }}, env)
}

// Payload returns the HEC body for ev: the Falco JSON as the event, the event's time (epoch
// seconds, so Splunk indexes it at the time Falco saw it rather than when it arrived), its
// hostname as the host.
func (c *Config) Payload(ev *event.Event) []byte {
	b := make([]byte, 0, len(ev.JSON())+160)
	b = append(b, `{"event":`...)
	b = append(b, ev.JSON()...)
	b = append(b, `,"time":`...)
	b = strconv.AppendFloat(b, float64(ev.Time.UnixMicro())/1e6, 'f', 6, 64)
	for _, kv := range [][2]string{{"host", ev.Hostname}, {"index", c.Index}, {"sourcetype", c.SourceType}} {
		if kv[1] != "" {
			b = append(b, `,"`+kv[0]+`":`...)
			v, _ := json.Marshal(kv[1])
			b = append(b, v...)
		}
	}
	return append(b, '}')
}
