// Package enrich applies falcosidekick's event enrichment (customfields, templatedfields,
// customtags, bracketreplacer, outputfieldformat) before an event is fanned out, so every
// output sees the same finished, read-only event.
package enrich

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"text/template"

	"github.com/google/uuid"

	"github.com/saker-dev/saker/engine/event"
)

// Options are the global enrichment settings.
type Options struct {
	// CustomFields are added to every event's output_fields; a value "%NAME" is replaced by
	// the environment variable NAME at load time.
	CustomFields map[string]string
	// TemplatedFields are Go templates over output_fields, added under their key.
	TemplatedFields map[string]string
	// CustomTags are appended to every event's tags.
	CustomTags []string
	// BracketReplacer, when set, renames output_fields keys "a[b]" to "a<r>b".
	BracketReplacer string
	// OutputFieldFormat rewrites the output line, e.g.
	// "<timestamp>: <priority> <output> <custom_fields> <templated_fields> <tags>".
	OutputFieldFormat string
	// Getenv resolves %NAME values; default os.Getenv.
	Getenv func(string) string
}

// Enricher is compiled once from Options.
type Enricher struct {
	custom    []kv
	templated []tmpl
	tags      []string
	bracket   string
	format    string
}

type kv struct{ key, value string }

type tmpl struct {
	key string
	t   *template.Template
}

// randPool turns on uuid's buffered randomness once: without it every generated uuid costs
// a getrandom system call, which showed in ingest profiles.
var randPool sync.Once

// New compiles the options; a template that does not parse is an error naming its key.
func New(o Options) (*Enricher, error) {
	randPool.Do(uuid.EnableRandPool)
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	e := &Enricher{tags: o.CustomTags, bracket: o.BracketReplacer, format: o.OutputFieldFormat}
	for k, v := range o.CustomFields {
		if strings.HasPrefix(v, "%") {
			v = getenv(strings.TrimPrefix(v, "%"))
		}
		e.custom = append(e.custom, kv{k, v})
	}
	sort.Slice(e.custom, func(i, j int) bool { return e.custom[i].key < e.custom[j].key })
	for k, v := range o.TemplatedFields {
		t, err := template.New(k).Option("missingkey=zero").Parse(v)
		if err != nil {
			return nil, fmt.Errorf("templatedfields.%s: %w", k, err)
		}
		e.templated = append(e.templated, tmpl{k, t})
	}
	sort.Slice(e.templated, func(i, j int) bool { return e.templated[i].key < e.templated[j].key })
	return e, nil
}

// Apply finishes ev in place before it is shared: it must be called once, by the input
// that owns the event. Template execution errors are returned (the field is still set to
// what rendered) so the caller can log them; the event is never dropped for them.
func (e *Enricher) Apply(ev *event.Event) error {
	if ev.UUID == "" {
		ev.UUID, ev.UUIDAssigned = uuid.NewString(), true
	}
	if ev.Source == "" {
		ev.Source = "syscalls"
	}
	var customText, templatedText strings.Builder
	if len(e.custom) > 0 || len(e.templated) > 0 {
		if ev.OutputFields == nil {
			ev.OutputFields = make(map[string]any, len(e.custom)+len(e.templated))
		}
	}
	for _, c := range e.custom {
		ev.OutputFields[c.key] = c.value
		fmt.Fprintf(&customText, "%s=%s ", c.key, c.value)
	}
	var errs []string
	for _, t := range e.templated {
		var buf bytes.Buffer
		if err := t.t.Execute(&buf, ev.OutputFields); err != nil {
			errs = append(errs, fmt.Sprintf("templatedfields.%s: %v", t.key, err))
		}
		ev.OutputFields[t.key] = buf.String()
		fmt.Fprintf(&templatedText, "%s=%s ", t.key, buf.String())
	}
	if len(e.tags) > 0 {
		ev.Tags = append(append([]string(nil), ev.Tags...), e.tags...)
	}
	if len(ev.Tags) > 1 {
		sort.Strings(ev.Tags)
	}
	if e.bracket != "" {
		for k, v := range ev.OutputFields {
			if strings.Contains(k, "[") {
				delete(ev.OutputFields, k)
				ev.OutputFields[strings.ReplaceAll(strings.ReplaceAll(k, "]", ""), "[", e.bracket)] = v
			}
		}
	}
	if e.format != "" {
		e.reformat(ev, strings.TrimSuffix(customText.String(), " "), strings.TrimSuffix(templatedText.String(), " "))
	}
	if len(errs) > 0 {
		return fmt.Errorf("enrich event %s: %s", ev.UUID, strings.Join(errs, "; "))
	}
	return nil
}

// reformat rewrites "HH:MM:SS.ns: Priority text" outputs with the outputfieldformat
// placeholders; other outputs are left alone, as falcosidekick does.
func (e *Enricher) reformat(ev *event.Event, custom, templated string) {
	parts := strings.SplitN(ev.Output, " ", 3)
	if len(parts) < 3 || !strings.HasSuffix(parts[0], ":") || !looksLikeClock(strings.TrimSuffix(parts[0], ":")) {
		return
	}
	r := strings.NewReplacer(
		"<timestamp>", strings.TrimSuffix(parts[0], ":"),
		"<priority>", ev.Priority.String(),
		"<output>", parts[2],
		"<custom_fields>", custom,
		"<templated_fields>", templated,
		"<tags>", strings.Join(ev.Tags, ","))
	// Empty trailing placeholders leave no "()" and no trailing spaces.
	out := strings.TrimRight(r.Replace(e.format), " ")
	out = strings.TrimSuffix(out, "( )")
	out = strings.TrimSuffix(out, "()")
	ev.Output = strings.TrimRight(out, " ")
}

func looksLikeClock(s string) bool {
	if len(s) < 8 {
		return false
	}
	for i, c := range s[:8] {
		if i == 2 || i == 5 {
			if c != ':' {
				return false
			}
		} else if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
