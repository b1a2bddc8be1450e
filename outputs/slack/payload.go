package slack

import (
	"strings"
	"text/template"
	"unicode/utf8"

	goslack "github.com/slack-go/slack"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs/internal/chat"
)

// Output formats (the <output>.outputformat key).
const (
	FormatAll    = "all"    // the event's output line and the fields
	FormatText   = "text"   // the output line only
	FormatFields = "fields" // the fields only
)

// Flavor is what differs between the destinations that take Slack's incoming-webhook
// payload. Slack, Mattermost and Rocket.Chat share one builder; each is a Flavor.
type Flavor struct {
	// Name is the output name, also its configuration section.
	Name string
	// EscapeMarkup escapes &, < and > in event text, as Slack's message format requires:
	// unescaped, an attacker-controlled field such as a file name "<!channel>" would notify
	// the whole channel, and "<https://evil|click>" would render as a link.
	EscapeMarkup bool
	// CheckAnswer inspects a 2xx answer body, for servers that report failures with 200.
	CheckAnswer func(body []byte) error
}

// Format is the part of the configuration that shapes the message.
type Format struct {
	Username      string
	Icon          string
	Channel       string
	Footer        string
	OutputFormat  string
	MessageFormat *template.Template
}

// shortFieldRunes is falcosidekick's threshold: shorter values are shown side by side.
const shortFieldRunes = 36

// colors maps priorities onto attachment colours as falcosidekick does.
var colors = map[event.Priority]string{
	event.Emergency:     "#e20b0b",
	event.Alert:         "#ff5400",
	event.Critical:      "#ff5400",
	event.Error:         "#e20b0b",
	event.Warning:       "#ffc700",
	event.Notice:        "#5bffb5",
	event.Informational: "#68c2ff",
	event.Debug:         "#ccfff2",
}

// Color returns the attachment colour of a priority.
func Color(p event.Priority) string { return colors[p] }

var markupEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Build returns the webhook message for ev. A messageformat that fails to execute does not
// lose the alert: the message is built without the text line and the error is returned
// alongside it for the caller to log.
func Build(f Flavor, p Format, ev *event.Event) (*goslack.WebhookMessage, error) {
	esc := func(s string) string { return s }
	if f.EscapeMarkup {
		esc = markupEscaper.Replace
	}
	format := p.OutputFormat
	if format == "" {
		format = FormatAll
	}
	att := goslack.Attachment{Fallback: ev.Output, Color: Color(ev.Priority)}
	if format == FormatAll || format == FormatText {
		att.Text = esc(ev.Output)
	}
	// After a dedup window, say how many similar alerts it suppressed, whatever the format.
	att.Text = chat.WithSuppressed(att.Text, ev)
	if format == FormatAll || format == FormatFields {
		att.Fields = fields(ev, esc)
		att.Footer = p.Footer
	}
	text, err := chat.Render(p.MessageFormat, ev)
	msg := &goslack.WebhookMessage{
		Username:    p.Username,
		IconURL:     p.Icon,
		Channel:     p.Channel,
		Text:        text,
		Attachments: []goslack.Attachment{att},
	}
	return msg, err
}

// fields lists rule, priority, source, hostname, tags, every output field (sorted, of any
// JSON type) and the time, in falcosidekick's order.
func fields(ev *event.Event, esc func(string) string) []goslack.AttachmentField {
	out := make([]goslack.AttachmentField, 0, len(ev.OutputFields)+6)
	add := func(title, value string, short bool) {
		out = append(out, goslack.AttachmentField{Title: esc(title), Value: esc(value), Short: short})
	}
	add("rule", ev.Rule, true)
	add("priority", ev.Priority.String(), true)
	add("source", ev.Source, true)
	if ev.Hostname != "" {
		add("hostname", ev.Hostname, true)
	}
	if len(ev.Tags) > 0 {
		add("tags", chat.Tags(ev), true)
	}
	for _, k := range chat.SortedKeys(ev.OutputFields) {
		v := chat.FieldValue(ev.OutputFields[k])
		add(k, v, utf8.RuneCountInString(v) < shortFieldRunes)
	}
	add("time", chat.TimeText(ev.Time), false)
	return out
}
