// Package cloudevents sends each event as a CloudEvent in HTTP binary mode: the Falco JSON
// as the body and the event's attributes as ce-* headers, falcosidekick's attributes and
// extensions (type falco.rule.output.v1, source https://falco.org, priority, rule,
// eventsource, hostname) plus the user's.
package cloudevents

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the cloudevents.* section.
type Config struct {
	Address    string            `koanf:"address" secret:"url" doc:"URL of the CloudEvents consumer (a Knative broker, an event sink); setting it enables the output"`
	Extensions map[string]string `koanf:"extensions" doc:"extension attributes added to every event, for routing (env: \"team:sec,env:prod\"); names are lowercase letters and digits"`
	CheckCert  bool              `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS  bool              `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{CheckCert: true} }

// reserved are the attributes saker sets itself: the spec's context attributes and
// falcosidekick's extensions. An extension of the same name would replace one of them.
var reserved = []string{"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time", "data",
	"priority", "rule", "eventsource", "hostname"}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Address == "" {
		return nil
	}
	if err := outputs.ValidateURL("cloudevents.address", c.Address); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(c.Extensions)) {
		n := strings.ToLower(name)
		if n == "" || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
			return fmt.Errorf("cloudevents.extensions: %q is not a CloudEvents attribute name (lowercase letters a-z and digits only)", name)
		}
		if slices.Contains(reserved, n) {
			return fmt.Errorf("cloudevents.extensions: %q is an attribute saker sets itself", name)
		}
	}
	return nil
}

func init() {
	s := outputs.Define("cloudevents", "cloudevents", defaults,
		func(c *Config) bool { return c.Address != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "send each event as a CloudEvent (HTTP binary mode)"
	outputs.Register(s)
}

// New builds the output.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ext := make(map[string]string, len(c.Extensions))
	for k, v := range c.Extensions {
		ext[headerName(k)] = encode(v)
	}
	return falcopost.New(falcopost.Options{Name: "cloudevents", URL: c.Address, CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		ContentType: "application/json", Headers: ext, EventHeaders: Headers}, env)
}

// Headers returns the event's attributes as binary-mode headers (the extensions come
// with every request). The id is the event's UUID, so a retried delivery is recognisably
// the same event (a new one for an event without, which saker's input never passes on).
func Headers(ev *event.Event) map[string]string {
	id := ev.UUID
	if id == "" {
		id = uuid.NewString()
	}
	h := map[string]string{
		"Ce-Specversion": "1.0",
		"Ce-Id":          encode(id),
		"Ce-Source":      "https://falco.org",
		"Ce-Type":        "falco.rule.output.v1",
		"Ce-Time":        ev.Time.UTC().Format(time.RFC3339Nano),
		"Ce-Priority":    ev.Priority.String(),
		"Ce-Rule":        encode(ev.Rule),
		"Ce-Eventsource": encode(ev.Source),
	}
	if ev.Hostname != "" {
		h["Ce-Hostname"] = encode(ev.Hostname)
	}
	return h
}

// headerName is an attribute's header: "Ce-" and the name with its first letter upper
// case, the canonical form Go's servers show (HTTP header names are case-insensitive).
func headerName(attr string) string {
	attr = strings.ToLower(attr)
	return "Ce-" + strings.ToUpper(attr[:1]) + attr[1:]
}

// encode percent-encodes an attribute value for a header as the HTTP binding requires:
// space, '"', '%' and every byte outside printable ASCII (so UTF-8 is encoded byte by
// byte). falcosidekick sent them raw, which strict receivers refuse or misread.
func encode(v string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
