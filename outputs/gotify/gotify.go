// Package gotify pushes each event to a Gotify server as a message: falcosidekick's title
// ("[Falco] [Priority] rule"), its priority scale and its message body, in Markdown, plain
// text or the event's JSON.
package gotify

import (
	"fmt"
	"slices"
	"strings"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the gotify.* section.
type Config struct {
	HostPort  string `koanf:"hostport" doc:"the Gotify server (https://gotify.example:443, with its base path if any); setting it enables the output"`
	Token     string `koanf:"token" secret:"true" doc:"an application token, sent as X-Gotify-Key"`
	Format    string `koanf:"format" doc:"markdown, plaintext (or text) or json"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
}

func defaults() *Config { return &Config{Format: "markdown", CheckCert: true} }

var formats = []string{"markdown", "plaintext", "text", "json"}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.HostPort == "" {
		return nil
	}
	if err := outputs.ValidateURL("gotify.hostport", c.HostPort); err != nil {
		return err
	}
	if !slices.Contains(formats, strings.ToLower(c.Format)) {
		return fmt.Errorf("gotify.format must be one of %s, got %q", strings.Join(formats, ", "), c.Format)
	}
	return outputs.CheckHeaders("gotify.token", falcopost.With(nil, "X-Gotify-Key", c.Token))
}

func init() {
	s := outputs.Define("gotify", "gotify", defaults,
		func(c *Config) bool { return c.HostPort != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "push a message to a Gotify server"
	outputs.Register(s)
}

// New builds the output.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	format := strings.ToLower(c.Format)
	return falcopost.New(falcopost.Options{Name: "gotify", URL: strings.TrimSuffix(c.HostPort, "/") + "/message",
		Headers: falcopost.With(nil, "X-Gotify-Key", c.Token), CheckCert: c.CheckCert,
		Body: func(ev *event.Event) ([]byte, error) { return chat.EncodeJSON(Build(ev, format)) }}, env)
}

// Message is Gotify's message body.
type Message struct {
	Title    string                       `json:"title"`
	Priority int                          `json:"priority,omitempty"`
	Message  string                       `json:"message"`
	Extras   map[string]map[string]string `json:"extras"`
}

// Build returns the message for ev in format (markdown, plaintext, text or json). The
// priority is falcosidekick's: Debug 1 up to Emergency 8, on Gotify's 0-10 scale.
func Build(ev *event.Event, format string) Message {
	ev = outputs.TruncateLongFields(ev)
	m := Message{Title: "[Falco] [" + ev.Priority.String() + "] " + ev.Rule, Priority: int(ev.Priority)}
	display := "plaintext"
	switch format {
	case "json":
		m.Message = string(ev.JSON())
	case "plaintext", "text":
		m.Message = text(ev, "%s: %s\n", "- %s: %s\n")
	default:
		display = "markdown"
		m.Message = text(ev, "- **%s**: %s\n", "\t- **%s**: %s\n")
	}
	m.Extras = map[string]map[string]string{"client::display": {"contentType": display}}
	return m
}

// text lays out falcosidekick's message: one line per attribute, then the output fields
// (every one, of any JSON type, null as null).
func text(ev *event.Event, line, field string) string {
	var b strings.Builder
	fmt.Fprintf(&b, line, "Priority", ev.Priority)
	fmt.Fprintf(&b, line, "Rule", ev.Rule)
	fmt.Fprintf(&b, line, "Output", ev.Output)
	fmt.Fprintf(&b, line, "Source", ev.Source)
	if ev.Hostname != "" {
		fmt.Fprintf(&b, line, "Hostname", ev.Hostname)
	}
	fmt.Fprintf(&b, line, "Tags", strings.Join(ev.Tags, " "))
	fmt.Fprintf(&b, line, "Time", chat.TimeText(ev.Time))
	b.WriteString(strings.TrimSuffix(fmt.Sprintf(line, "Fields", ""), " \n") + "\n")
	for _, k := range chat.SortedKeys(ev.OutputFields) {
		fmt.Fprintf(&b, field, k, chat.FieldValue(ev.OutputFields[k]))
	}
	return b.String()
}
