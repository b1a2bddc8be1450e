// Package cliq posts each event to a Zoho Cliq channel's incoming webhook: a text line (with
// an emoji per priority when asked) and a table of the rule, priority, source, hostname,
// output fields, tags and time, as falcosidekick's Cliq output lays it out.
package cliq

import (
	"text/template"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// DefaultIcon is falcosidekick's default bot image.
const DefaultIcon = "https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick_color.png"

// botName is the name messages are posted under, falcosidekick's.
const botName = "Falcosidekick"

// Output formats.
const (
	FormatAll    = "all"    // text line, output line (with a messageformat) and table
	FormatText   = "text"   // text line and, with a messageformat, the output line
	FormatFields = "fields" // text line and table
)

// Config is the cliq.* section.
type Config struct {
	WebhookURL    string `koanf:"webhookurl" secret:"true" doc:"channel webhook URL (https://cliq.zoho.com/api/v2/channelsbyname/NAME/message?zapikey=...: it holds the credential); setting it enables the output"`
	Icon          string `koanf:"icon" doc:"image of the bot the message is posted as"`
	UseEmoji      bool   `koanf:"useemoji" doc:"start the text line with an emoji per priority"`
	OutputFormat  string `koanf:"outputformat" doc:"all (text, output line and table), text (text and output line) or fields (text and table)"`
	MessageFormat string `koanf:"messageformat" doc:"Go template for the text line, e.g. 'Alert: rule *{{ .Rule }}* by {{ index .OutputFields \"user.name\" }}'; empty: the event's output line"`
	CheckCert     bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS     bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{Icon: DefaultIcon, OutputFormat: FormatAll, CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.WebhookURL == "" {
		return nil
	}
	return chat.CheckWebhook("cliq", c.WebhookURL, c.OutputFormat, c.MessageFormat, FormatAll, FormatText, FormatFields)
}

func init() {
	s := outputs.Define("cliq", "cliq", defaults,
		func(c *Config) bool { return c.WebhookURL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "post to a Zoho Cliq channel webhook"
	outputs.Register(s)
}

// Cliq is the output: falcopost's, with the message Build makes.
type Cliq struct {
	*falcopost.Output
	cfg    Config
	format *template.Template
}

// New builds the output.
func New(c *Config, env outputs.Env) (*Cliq, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	format, _ := chat.ParseTemplate("cliq.messageformat", c.MessageFormat) // checked by Validate
	o := &Cliq{cfg: *c, format: format}
	if o.cfg.OutputFormat == "" {
		o.cfg.OutputFormat = FormatAll
	}
	var err error
	// The webhook URL never appears in errors: its query holds the key.
	o.Output, err = falcopost.New(falcopost.Options{Name: "cliq", URL: c.WebhookURL, LogURL: chat.SafeURL(c.WebhookURL),
		ContentType: "application/json", CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		Body: chat.TemplatedBody(env.Logger(), o.Build)}, env)
	if err != nil {
		return nil, err
	}
	return o, nil
}

// Message is a Cliq message with slides
// (https://www.zoho.com/cliq/help/restapi/v2/#Post_Message_Channel).
type Message struct {
	Text   string  `json:"text"`
	Bot    Bot     `json:"bot"`
	Slides []Slide `json:"slides,omitempty"`
}

// Bot is who the message is posted as.
type Bot struct {
	Name  string `json:"name"`
	Image string `json:"image,omitempty"`
}

// Slide is a text slide (Data a string) or a table slide (Data a *Table).
type Slide struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// Table is a table slide's data.
type Table struct {
	Headers []string `json:"headers"`
	Rows    []Row    `json:"rows"`
}

// Row is one table row.
type Row struct {
	Field string `json:"field"`
	Value string `json:"value"`
}

// Emojis start the text line with useemoji, by priority (falcosidekick's).
var Emojis = map[event.Priority]string{
	event.Emergency:     "🚨",
	event.Alert:         "🟠",
	event.Critical:      "🟠",
	event.Error:         "🚨",
	event.Warning:       "🟡",
	event.Notice:        "🔵",
	event.Informational: "🟢",
	event.Debug:         "⚪",
}

// Build returns the message for ev. With a messageformat, the template's line is the text
// and the output line follows as a text slide (all and text formats); a template that fails
// on this event leaves the output line as the text, and the error is returned for the log.
func (c *Cliq) Build(ev *event.Event) (Message, error) {
	ev = outputs.TruncateLongFields(ev)
	m := Message{Text: ev.Output, Bot: Bot{Name: botName, Image: c.cfg.Icon}}
	var terr error
	if c.format != nil {
		text, err := chat.Render(c.format, ev)
		if err == nil {
			m.Text = text
			if c.cfg.OutputFormat != FormatFields {
				m.Slides = append(m.Slides, Slide{Type: "text", Data: ev.Output})
			}
		}
		terr = err
	}
	if c.cfg.OutputFormat != FormatText {
		table := &Table{Headers: []string{"field", "value"}}
		for _, f := range chat.Facts(ev) {
			table.Rows = append(table.Rows, Row{Field: f.Name, Value: f.Value})
		}
		m.Slides = append(m.Slides, Slide{Type: "table", Data: table})
	}
	m.Text = chat.WithSuppressed(m.Text, ev) // after a dedup window
	if c.cfg.UseEmoji {
		m.Text = Emojis[ev.Priority] + " " + m.Text
	}
	return m, terr
}
