// Package chat holds what the chat outputs (Slack, Mattermost, Rocket.Chat, Teams) share:
// rendering output fields of any JSON type as text, their order, and the messageformat Go
// template. It exists so each chat output stays a small payload spec.
package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// FieldValue renders one output field as chat text. falcosidekick silently dropped every
// non-string field (numbers, booleans, null, lists); saker shows them all: numbers with
// their exact JSON spelling, null as "null", lists and objects as compact JSON.
func FieldValue(v any) string { return event.FieldText(v) }

// SortedKeys returns the output field names in byte order, the order falcosidekick lists
// them in, so messages are stable from one event to the next.
func SortedKeys(fields map[string]any) []string {
	return slices.Sorted(maps.Keys(fields))
}

// Tags returns the event's tags sorted and joined with ", " as falcosidekick shows them,
// without sorting the shared event's slice in place (falcosidekick did).
func Tags(ev *event.Event) string {
	tags := slices.Clone(ev.Tags)
	slices.Sort(tags)
	return strings.Join(tags, ", ")
}

// Fact is one labelled value of a chat message.
type Fact struct {
	Name, Value string
}

// Facts lists the rule, priority, source, hostname, every output field (sorted by name, of
// any JSON type), the tags and the time: the order falcosidekick's Discord, Google Chat and
// Cliq outputs use. Empty hostname and tags are left out.
func Facts(ev *event.Event) []Fact {
	facts := make([]Fact, 0, len(ev.OutputFields)+6)
	facts = append(facts, Fact{"rule", ev.Rule}, Fact{"priority", ev.Priority.String()}, Fact{"source", ev.Source})
	if ev.Hostname != "" {
		facts = append(facts, Fact{"hostname", ev.Hostname})
	}
	for _, k := range SortedKeys(ev.OutputFields) {
		facts = append(facts, Fact{k, FieldValue(ev.OutputFields[k])})
	}
	if len(ev.Tags) > 0 {
		facts = append(facts, Fact{"tags", Tags(ev)})
	}
	return append(facts, Fact{"time", TimeText(ev.Time)})
}

// Cut shortens s to at most n characters (services count characters, not bytes), ending it
// with "…" when it was longer.
func Cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// TimeText is the event time as falcosidekick prints it ("2019-05-17 15:31:56.746609046
// +0000 UTC"), kept so users' chat searches keep matching.
func TimeText(t time.Time) string { return t.String() }

// CheckWebhook validates the keys chat outputs share, naming them under section: the webhook
// URL (printed without its secret path), the output format (one of formats; empty means
// the default) and the messageformat template.
func CheckWebhook(section, webhookURL, outputFormat, messageFormat string, formats ...string) error {
	if err := outputs.ValidateURL(section+".webhookurl", SafeURL(webhookURL)); err != nil {
		return err
	}
	if outputFormat != "" && !slices.Contains(formats, outputFormat) {
		return fmt.Errorf("%s.outputformat must be %s, got %q", section, orList(formats), outputFormat)
	}
	_, err := ParseTemplate(section+".messageformat", messageFormat)
	return err
}

// orList writes "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// ParseTemplate compiles a messageformat template, naming key in the error.
func ParseTemplate(key, text string) (*template.Template, error) {
	if text == "" {
		return nil, nil
	}
	t, err := template.New(key).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s is not a valid Go template: %w", key, err)
	}
	return t, nil
}

// TemplateData is what a messageformat template sees: falcosidekick's field names
// (.Output, .Priority, .Rule, .Time, .OutputFields, .Source, .Tags, .Hostname, .UUID).
// Null output fields read as "null" rather than text/template's "<no value>".
type TemplateData struct {
	UUID         string
	Output       string
	Priority     event.Priority
	Rule         string
	Time         time.Time
	OutputFields map[string]any
	Source       string
	Tags         []string
	Hostname     string
}

// Render executes t over ev. The event is not modified: templates see a copy of the fields.
func Render(t *template.Template, ev *event.Event) (string, error) {
	if t == nil {
		return "", nil
	}
	fields := make(map[string]any, len(ev.OutputFields))
	for k, v := range ev.OutputFields {
		if v == nil {
			v = "null"
		}
		fields[k] = v
	}
	data := TemplateData{UUID: ev.UUID, Output: ev.Output, Priority: ev.Priority, Rule: ev.Rule, Time: ev.Time,
		OutputFields: fields, Source: ev.Source, Tags: slices.Clone(ev.Tags), Hostname: ev.Hostname}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("execute %s: %w", t.Name(), err)
	}
	return buf.String(), nil
}

// TemplatedBody is the request body of a chat output whose message has a messageformat line:
// build's message, encoded; when the template failed on this event the message still goes
// (build put the output line in its place) and the failure is logged.
func TemplatedBody[M any](log *slog.Logger, build func(*event.Event) (M, error)) func(*event.Event) ([]byte, error) {
	return func(ev *event.Event) ([]byte, error) {
		m, terr := build(ev)
		if terr != nil {
			log.Warn("messageformat failed, sending the output line instead", "rule", ev.Rule, "err", terr)
		}
		return EncodeJSON(m)
	}
}

// EncodeJSON marshals a payload without escaping <, > and & as \u003c..., which
// falcosidekick did and chat clients then showed in previews and logs.
func EncodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// SafeURL is how a webhook URL appears in errors and logs: scheme and host only. Chat
// webhook URLs carry their credential in the path (Slack, Mattermost, Rocket.Chat, Teams
// connectors) or the query (Teams Workflows' sig), so neither is ever printed.
func SafeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<unparseable URL>"
	}
	return u.Scheme + "://" + u.Host + "/REDACTED"
}

// Suppressed is the line a chat message adds when its alert is the first one sent after a
// dedup window suppressed similar ones ("(12 similar alerts suppressed within 30s of the
// previous one)"), from the fields the engine set; "" otherwise.
func Suppressed(ev *event.Event) string {
	n, _ := strconv.Atoi(event.FieldText(ev.OutputFields[delivery.SuppressedField]))
	if n <= 0 {
		return ""
	}
	alerts := "alerts"
	if n == 1 {
		alerts = "alert"
	}
	line := fmt.Sprintf("(%d similar %s suppressed", n, alerts)
	if w, ok := ev.OutputFields[delivery.SuppressedWindowField].(string); ok && w != "" {
		line += " within " + w + " of the previous one"
	}
	return line + ")"
}

// WithSuppressed is text followed, on a line of its own, by ev's Suppressed line (either may
// be empty).
func WithSuppressed(text string, ev *event.Event) string {
	line := Suppressed(ev)
	switch {
	case line == "":
		return text
	case text == "":
		return line
	}
	return text + "\n" + line
}

// CutWithSuppressed is text cut (as Cut does) so that, followed by ev's Suppressed line, it
// holds at most n characters: the line is kept whole.
func CutWithSuppressed(text string, n int, ev *event.Event) string {
	line := Suppressed(ev)
	if line == "" {
		return Cut(text, n)
	}
	return WithSuppressed(Cut(text, n-utf8.RuneCountInString(line)-1), ev)
}
