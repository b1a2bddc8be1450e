package teams

import (
	"strings"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs/internal/chat"
)

// Card formats (the teams.format key).
const (
	FormatMessageCard  = "messagecard"  // legacy Office 365 connector card, as falcosidekick
	FormatAdaptiveCard = "adaptivecard" // Adaptive Card 1.4 in a message, for Teams Workflows
)

// Output formats (the teams.outputformat key).
const (
	OutputAll   = "all"   // the output line and the facts
	OutputText  = "text"  // the output line only
	OutputFacts = "facts" // the facts only
)

// themeColors are falcosidekick's MessageCard colours (they differ from its Slack ones).
var themeColors = map[event.Priority]string{
	event.Emergency:     "e20b0b",
	event.Alert:         "ff5400",
	event.Critical:      "ff9000",
	event.Error:         "ffc700",
	event.Warning:       "ffff00",
	event.Notice:        "5bffb5",
	event.Informational: "68c2ff",
	event.Debug:         "ccfff2",
}

// containerStyles map priorities onto the Adaptive Card container styles Teams colours.
var containerStyles = map[event.Priority]string{
	event.Emergency:     "attention",
	event.Alert:         "attention",
	event.Critical:      "attention",
	event.Error:         "attention",
	event.Warning:       "warning",
	event.Notice:        "accent",
	event.Informational: "accent",
	event.Debug:         "emphasis",
}

// fact is one name/value line of the card.
type fact struct{ name, value string }

// facts lists rule, priority, source, hostname, every output field (sorted, of any JSON
// type), tags and the time. falcosidekick's order, plus the time it left out.
func facts(ev *event.Event) []fact {
	out := make([]fact, 0, len(ev.OutputFields)+6)
	out = append(out, fact{"rule", ev.Rule}, fact{"priority", ev.Priority.String()}, fact{"source", ev.Source})
	if ev.Hostname != "" {
		out = append(out, fact{"hostname", ev.Hostname})
	}
	for _, k := range chat.SortedKeys(ev.OutputFields) {
		out = append(out, fact{k, chat.FieldValue(ev.OutputFields[k])})
	}
	if len(ev.Tags) > 0 {
		out = append(out, fact{"tags", chat.Tags(ev)})
	}
	return append(out, fact{"time", chat.TimeText(ev.Time)})
}

// MessageCard is the legacy connector card falcosidekick sends.
type MessageCard struct {
	Type       string    `json:"@type"`
	Context    string    `json:"@context"`
	Summary    string    `json:"summary"`
	ThemeColor string    `json:"themeColor,omitempty"`
	Sections   []Section `json:"sections"`
}

// Section is a MessageCard section.
type Section struct {
	ActivityTitle    string     `json:"activityTitle"`
	ActivitySubtitle string     `json:"activitySubtitle"`
	ActivityImage    string     `json:"activityImage,omitempty"`
	Text             string     `json:"text,omitempty"`
	Facts            []NameFact `json:"facts,omitempty"`
}

// NameFact is a MessageCard fact.
type NameFact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// BuildMessageCard returns falcosidekick's MessageCard for ev, with @context, a time fact,
// every output field and the rule as the section title.
func BuildMessageCard(ev *event.Event, outputFormat, image string) *MessageCard {
	sec := Section{ActivityTitle: ev.Rule, ActivitySubtitle: chat.TimeText(ev.Time), ActivityImage: image}
	if outputFormat != OutputFacts {
		sec.Text = ev.Output
	}
	if line := chat.Suppressed(ev); line != "" { // after a dedup window, whatever the format
		sec.Text = strings.TrimPrefix(sec.Text+"\n\n"+line, "\n\n") // a MessageCard's text is markdown
	}
	if outputFormat != OutputText {
		for _, f := range facts(ev) {
			sec.Facts = append(sec.Facts, NameFact{f.name, f.value})
		}
	}
	return &MessageCard{Type: "MessageCard", Context: "https://schema.org/extensions", Summary: summary(ev),
		ThemeColor: themeColors[ev.Priority], Sections: []Section{sec}}
}

// summary is what Teams shows in notifications; it must not be empty.
func summary(ev *event.Event) string {
	if ev.Output != "" {
		return ev.Output
	}
	return ev.Rule
}

// Message is the Teams message envelope Workflows webhooks take.
type Message struct {
	Type        string       `json:"type"`
	Attachments []Attachment `json:"attachments"`
}

// Attachment carries one card in a Message.
type Attachment struct {
	ContentType string        `json:"contentType"`
	ContentURL  *string       `json:"contentUrl"`
	Content     *AdaptiveCard `json:"content"`
}

// AdaptiveCard is an Adaptive Card 1.4 (the newest version Teams renders everywhere).
type AdaptiveCard struct {
	Schema       string         `json:"$schema"`
	Type         string         `json:"type"`
	Version      string         `json:"version"`
	FallbackText string         `json:"fallbackText,omitempty"`
	MSTeams      map[string]any `json:"msteams,omitempty"`
	Body         []Element      `json:"body"`
}

// Element is an Adaptive Card body element; only the keys a given type uses are set.
type Element struct {
	Type     string      `json:"type"`
	Text     string      `json:"text,omitempty"`
	Weight   string      `json:"weight,omitempty"`
	Size     string      `json:"size,omitempty"`
	IsSubtle bool        `json:"isSubtle,omitempty"`
	Spacing  string      `json:"spacing,omitempty"`
	Wrap     bool        `json:"wrap,omitempty"`
	Style    string      `json:"style,omitempty"`
	Bleed    bool        `json:"bleed,omitempty"`
	URL      string      `json:"url,omitempty"`
	AltText  string      `json:"altText,omitempty"`
	Width    string      `json:"width,omitempty"`
	Items    []Element   `json:"items,omitempty"`
	Columns  []Element   `json:"columns,omitempty"`
	Facts    []TitleFact `json:"facts,omitempty"`
}

// TitleFact is an Adaptive Card FactSet entry.
type TitleFact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// AdaptiveContentType is the attachment content type of an Adaptive Card.
const AdaptiveContentType = "application/vnd.microsoft.card.adaptive"

// BuildAdaptiveCard returns a Teams message holding an Adaptive Card 1.4: a header coloured
// by priority (image, rule, priority and time), the output line and a FactSet.
func BuildAdaptiveCard(ev *event.Event, outputFormat, image string) *Message {
	title := []Element{
		{Type: "TextBlock", Text: ev.Rule, Weight: "Bolder", Size: "Medium", Wrap: true},
		{Type: "TextBlock", Text: ev.Priority.String() + " · " + chat.TimeText(ev.Time), IsSubtle: true, Spacing: "None", Wrap: true},
	}
	var columns []Element
	if image != "" {
		columns = append(columns, Element{Type: "Column", Width: "auto",
			Items: []Element{{Type: "Image", URL: image, Size: "Small", AltText: "Falco"}}})
	}
	columns = append(columns, Element{Type: "Column", Width: "stretch", Items: title})
	body := []Element{{Type: "Container", Style: containerStyles[ev.Priority], Bleed: true,
		Items: []Element{{Type: "ColumnSet", Columns: columns}}}}
	if outputFormat != OutputFacts {
		body = append(body, Element{Type: "TextBlock", Text: ev.Output, Wrap: true})
	}
	if line := chat.Suppressed(ev); line != "" { // after a dedup window, whatever the format
		body = append(body, Element{Type: "TextBlock", Text: line, IsSubtle: true, Wrap: true})
	}
	if outputFormat != OutputText {
		var fs []TitleFact
		for _, f := range facts(ev) {
			fs = append(fs, TitleFact{f.name, f.value})
		}
		body = append(body, Element{Type: "FactSet", Facts: fs})
	}
	card := &AdaptiveCard{Schema: "http://adaptivecards.io/schemas/adaptive-card.json", Type: "AdaptiveCard",
		Version: "1.4", FallbackText: summary(ev), MSTeams: map[string]any{"width": "Full"}, Body: body}
	return &Message{Type: "message", Attachments: []Attachment{{ContentType: AdaptiveContentType, Content: card}}}
}
