// Package discord posts each event to a Discord channel webhook as one embed: the output line
// as its description, a colour per priority, and the rule, priority, source, hostname, output
// fields, tags and time as inline fields, as falcosidekick's Discord output lays them out.
package discord

import (
	"strconv"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// DefaultIcon is falcosidekick's default avatar.
const DefaultIcon = "https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick_color.png"

// Config is the discord.* section.
type Config struct {
	WebhookURL string `koanf:"webhookurl" secret:"true" doc:"channel webhook URL (https://discord.com/api/webhooks/ID/TOKEN: it holds the credential); setting it enables the output"`
	Icon       string `koanf:"icon" doc:"avatar URL the message is posted with; empty: the webhook's own"`
	CheckCert  bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS  bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{Icon: DefaultIcon, CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.WebhookURL == "" {
		return nil
	}
	return outputs.ValidateURL("discord.webhookurl", chat.SafeURL(c.WebhookURL))
}

func init() {
	s := outputs.Define("discord", "discord", defaults,
		func(c *Config) bool { return c.WebhookURL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "post an embed to a Discord channel webhook"
	outputs.Register(s)
}

// New builds the output. Discord answers 204 (or 200); a 429 carries Retry-After, which the
// engine honours. The webhook URL never appears in errors: it is the credential.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	icon := c.Icon
	return falcopost.New(falcopost.Options{Name: "discord", URL: c.WebhookURL, LogURL: chat.SafeURL(c.WebhookURL),
		CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		Body: func(ev *event.Event) ([]byte, error) { return chat.EncodeJSON(Build(ev, icon)) }}, env)
}

// Message is Discord's "execute webhook" body, as far as saker fills it.
type Message struct {
	Content   string  `json:"content"`
	AvatarURL string  `json:"avatar_url,omitempty"`
	Embeds    []Embed `json:"embeds"`
}

// Embed is one rich embed. Colour is a number, as Discord documents it (falcosidekick sent
// a string, which Discord happens to accept).
type Embed struct {
	Title       string  `json:"title"`
	URL         string  `json:"url"`
	Description string  `json:"description"`
	Color       int     `json:"color"`
	Fields      []Field `json:"fields"`
}

// Field is one embed field.
type Field struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

// Discord's limits on an embed (https://discord.com/developers/docs/resources/message#embed-object-embed-limits):
// a message over them is refused with 400, so saker shortens rather than lose the alert.
const (
	maxDescription = 4096
	maxFields      = 25
	maxFieldName   = 256
	maxFieldValue  = 1024
)

// Colors are Discord's palette values falcosidekick uses, by priority.
var Colors = map[event.Priority]int{
	event.Emergency:     10038562, // dark red
	event.Alert:         11027200, // dark orange
	event.Critical:      15105570, // orange
	event.Error:         15844367, // gold
	event.Warning:       12745742, // dark gold
	event.Notice:        3066993,  // green
	event.Informational: 3447003,  // blue
	event.Debug:         12370112, // light grey
}

// Build returns the message for ev. Every output field is listed, whatever its JSON type
// (falcosidekick dropped non-strings), its value in a code block; when an event has more
// fields than an embed holds, the last field says how many were left out.
func Build(ev *event.Event, icon string) Message {
	ev = outputs.TruncateLongFields(ev)
	facts := chat.Facts(ev)
	// rule, priority, source and hostname come first, tags and time last: the output
	// fields in between give way when there are more than an embed holds.
	head := len(facts) - len(ev.OutputFields) - 1 // all but the output fields and the time
	if len(ev.Tags) > 0 {
		head--
	}
	outputFields, tail := facts[head:head+len(ev.OutputFields)], facts[head+len(ev.OutputFields):]
	room := maxFields - head - len(tail)
	left := 0
	if len(outputFields) > room {
		room-- // one field says what was left out
		left = len(outputFields) - room
		outputFields = outputFields[:room]
	}
	fields := make([]Field, 0, maxFields)
	add := func(f chat.Fact) {
		if f.Value == "" {
			f.Value = "-" // Discord refuses an empty field value
		}
		fields = append(fields, Field{Name: chat.Cut(f.Name, maxFieldName), Value: f.Value, Inline: true})
	}
	for _, f := range facts[:head] {
		add(chat.Fact{Name: f.Name, Value: chat.Cut(f.Value, maxFieldValue)})
	}
	for _, f := range outputFields {
		add(chat.Fact{Name: f.Name, Value: "```" + chat.Cut(f.Value, maxFieldValue-6) + "```"})
	}
	if left > 0 {
		fields = append(fields, Field{Name: "…", Value: strconv.Itoa(left) + " more output fields not shown"})
	}
	for _, f := range tail {
		add(chat.Fact{Name: f.Name, Value: chat.Cut(f.Value, maxFieldValue)})
	}
	// After a dedup window, the description ends with how many similar alerts it suppressed.
	return Message{AvatarURL: icon, Embeds: []Embed{{Description: chat.CutWithSuppressed(ev.Output, maxDescription, ev),
		Color: Colors[ev.Priority], Fields: fields}}}
}
