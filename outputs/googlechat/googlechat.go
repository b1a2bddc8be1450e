// Package googlechat posts each event to a Google Chat space's incoming webhook: a card of
// key-value widgets (rule, priority, source, hostname, output fields, tags, time) under a
// text line, as falcosidekick's Google Chat output lays it out.
package googlechat

import (
	"text/template"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Output formats.
const (
	FormatAll  = "all"  // the text line and the card
	FormatText = "text" // the text line only
)

// Config is the googlechat.* section.
type Config struct {
	WebhookURL    string `koanf:"webhookurl" secret:"true" doc:"space webhook URL (https://chat.googleapis.com/v1/spaces/.../messages?key=...&token=...: it holds the credential); setting it enables the output"`
	OutputFormat  string `koanf:"outputformat" doc:"all (text line and card) or text (text line only)"`
	MessageFormat string `koanf:"messageformat" doc:"Go template for the text line, e.g. 'Alert: rule *{{ .Rule }}* by {{ index .OutputFields \"user.name\" }}'; empty: the event's output line"`
	CheckCert     bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS     bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{OutputFormat: FormatAll, CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.WebhookURL == "" {
		return nil
	}
	return chat.CheckWebhook("googlechat", c.WebhookURL, c.OutputFormat, c.MessageFormat, FormatAll, FormatText)
}

func init() {
	s := outputs.Define("googlechat", "googlechat", defaults,
		func(c *Config) bool { return c.WebhookURL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "post a card to a Google Chat space webhook"
	outputs.Register(s)
}

// GoogleChat is the output: falcopost's, with the message Build makes.
type GoogleChat struct {
	*falcopost.Output
	withCard bool
	format   *template.Template
}

// New builds the output.
func New(c *Config, env outputs.Env) (*GoogleChat, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	format, _ := chat.ParseTemplate("googlechat.messageformat", c.MessageFormat) // checked by Validate
	g := &GoogleChat{withCard: c.OutputFormat != FormatText, format: format}
	var err error
	// Chat answers 200 with the message it created, 429 when the space is posted to faster
	// than about once a second. The webhook URL never appears in errors: its query holds the
	// key and token.
	g.Output, err = falcopost.New(falcopost.Options{Name: "googlechat", URL: c.WebhookURL, LogURL: chat.SafeURL(c.WebhookURL),
		CheckCert: c.CheckCert, MutualTLS: c.MutualTLS, Body: chat.TemplatedBody(env.Logger(), g.Build)}, env)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// Message is a Google Chat message with a legacy (v1) card, the shape falcosidekick sends
// and Chat webhooks render.
type Message struct {
	Text  string `json:"text,omitempty"`
	Cards []Card `json:"cards,omitempty"`
}

// Card is one v1 card.
type Card struct {
	Header   Header    `json:"header"`
	Sections []Section `json:"sections"`
}

// Header is a card's header; falcosidekick leaves it empty.
type Header struct {
	Title    string `json:"title"`
	Subtitle string `json:"subtitle"`
}

// Section holds the widgets.
type Section struct {
	Widgets []Widget `json:"widgets"`
}

// Widget is one key-value widget.
type Widget struct {
	KeyValue KeyValue `json:"keyValue"`
}

// KeyValue is a labelled value.
type KeyValue struct {
	TopLabel string `json:"topLabel"`
	Content  string `json:"content"`
}

// Build returns the message for ev. The text line is the messageformat template's, or the
// event's output line (falcosidekick sent no text without a template: in text format an
// empty `{}`, which Chat refuses). When the template fails on this event, the message goes
// with the output line and the error is returned for the log.
func (g *GoogleChat) Build(ev *event.Event) (Message, error) {
	ev = outputs.TruncateLongFields(ev)
	m := Message{Text: ev.Output}
	var terr error
	if g.format != nil {
		text, err := chat.Render(g.format, ev)
		if err == nil {
			m.Text = text
		}
		terr = err
	}
	// After a dedup window, say how many similar alerts it suppressed.
	m.Text = chat.WithSuppressed(m.Text, ev)
	if !g.withCard {
		return m, terr
	}
	var widgets []Widget
	for _, f := range chat.Facts(ev) {
		widgets = append(widgets, Widget{KeyValue{TopLabel: f.Name, Content: f.Value}})
	}
	m.Cards = []Card{{Sections: []Section{{Widgets: widgets}}}}
	return m, terr
}
