// Package webex posts each event to a Webex space's incoming webhook as a Markdown message:
// the rule as a heading, the output line, then the hostname, source, priority, tags and
// output fields as a list, as falcosidekick's Webex output lays it out.
package webex

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the webex.* section.
type Config struct {
	WebhookURL string `koanf:"webhookurl" secret:"true" doc:"incoming webhook URL (https://webexapis.com/v1/webhooks/incoming/ID: it holds the credential); setting it enables the output"`
	CheckCert  bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS  bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.WebhookURL == "" {
		return nil
	}
	return outputs.ValidateURL("webex.webhookurl", chat.SafeURL(c.WebhookURL))
}

func init() {
	s := outputs.Define("webex", "webex", defaults,
		func(c *Config) bool { return c.WebhookURL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "post a Markdown message to a Webex space webhook"
	outputs.Register(s)
}

// New builds the output; Webex answers 204. The webhook URL never appears in errors.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "webex", URL: c.WebhookURL, LogURL: chat.SafeURL(c.WebhookURL),
		CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		Body: func(ev *event.Event) ([]byte, error) { return chat.EncodeJSON(Build(ev)) }}, env)
}

// Message is the webhook's body.
type Message struct {
	Markdown string `json:"markdown"`
}

// maxMessageBytes is Webex's limit on a message (7,439 bytes); longer ones are refused.
const maxMessageBytes = 7439

// Build returns the message for ev. Every output field is listed, null as "null"
// (falcosidekick printed "<no value>"); a message over Webex's size limit ends with a line
// saying it was cut.
func Build(ev *event.Event) Message {
	ev = outputs.TruncateLongFields(ev)
	var b strings.Builder
	fmt.Fprintf(&b, "# Falco Rule '%s'\n\n### %s\n\n", ev.Rule, ev.Output)
	if line := chat.Suppressed(ev); line != "" { // after a dedup window, before anything a cut could take
		b.WriteString(line + "\n\n")
	}
	b.WriteString("Additional informations:\n")
	fmt.Fprintf(&b, "  * Hostname: %s\n  * Source: %s\n  * Priority: %s\n  * Tags:\n", ev.Hostname, ev.Source, ev.Priority)
	for _, tag := range ev.Tags {
		fmt.Fprintf(&b, "    * %s\n", tag)
	}
	b.WriteString("  * Fields:\n")
	for _, k := range chat.SortedKeys(ev.OutputFields) {
		fmt.Fprintf(&b, "    * %s: %s\n", k, chat.FieldValue(ev.OutputFields[k]))
	}
	return Message{Markdown: cutBytes(b.String(), maxMessageBytes)}
}

// cutNote ends a message cut to Webex's limit.
const cutNote = "\n\n(cut: the alert was longer than a Webex message)"

// cutBytes shortens s to at most n bytes, on a character boundary, with cutNote at the end.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-len(cutNote)]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + cutNote
}
