// Package alertfilter compiles per-output routing filters: conditions in the rule language
// (engine/rules) over an alert rather than over an audit event, such as
// `priority >= warning and output_fields[k8s.ns.name] in (prod, payments)`.
package alertfilter

import (
	"fmt"
	"strconv"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/rules"
)

// Fields are the names a filter may use, in the order the docs list them.
var Fields = []string{"rule", "priority", "source", "tags", "hostname", "output", "output_fields"}

// Filter is a compiled filter; safe for concurrent use.
type Filter struct{ cond *rules.Condition }

// Compile compiles a filter. The error gives the column and what was expected.
func Compile(text string) (*Filter, error) {
	c, err := rules.CompileCondition(source{}, Fields, text)
	if err != nil {
		return nil, err
	}
	return &Filter{cond: c}, nil
}

// Match reports whether ev passes the filter.
func (f *Filter) Match(ev *event.Event) bool { return f.cond.Match(ev) }

// String is the filter's text.
func (f *Filter) String() string { return f.cond.String() }

// source gives the rule engine the fields of an *event.Event.
type source struct{}

func (source) Name() string { return "alert" }

func (source) TimeNanos(ev any) int64 { return ev.(*event.Event).Time.UnixNano() }

func (source) FieldNames() []string { return Fields }

func scalar(get func(*event.Event) string) rules.Field {
	return rules.Field{Extract: func(ev any, buf []string) ([]string, bool) {
		return append(buf, get(ev.(*event.Event))), true
	}}
}

func (source) Field(name, arg string, hasArg bool) (rules.Field, error) {
	if hasArg != (name == "output_fields") {
		if hasArg {
			return rules.Field{}, fmt.Errorf("field %s takes no argument", name)
		}
		return rules.Field{}, fmt.Errorf("field output_fields needs the name of a field: output_fields[k8s.ns.name]")
	}
	switch name {
	case "rule":
		return scalar(func(e *event.Event) string { return e.Rule }), nil
	case "source":
		return scalar(func(e *event.Event) string { return e.Source }), nil
	case "hostname":
		return scalar(func(e *event.Event) string { return e.Hostname }), nil
	case "output":
		return scalar(func(e *event.Event) string { return e.Output }), nil
	case "priority":
		// Extracted as its severity number, so that >= orders levels; conditions name levels.
		f := scalar(func(e *event.Event) string { return strconv.Itoa(int(e.Priority)) })
		f.Numeric = true
		f.Literal = func(lit string) (string, error) {
			p, err := event.ParsePriority(lit)
			if err != nil || p == event.Default {
				return "", fmt.Errorf("%q is not a priority: expected one of %s", lit, event.PriorityNames)
			}
			return strconv.Itoa(int(p)), nil
		}
		return f, nil
	case "tags":
		return rules.Field{List: true, Extract: func(ev any, buf []string) ([]string, bool) {
			tags := ev.(*event.Event).Tags
			return append(buf, tags...), len(tags) > 0
		}}, nil
	case "output_fields":
		// Compared as event.FieldText renders it: strings as they are, numbers with their
		// JSON spelling, lists and objects as compact JSON.
		return rules.Field{Extract: func(ev any, buf []string) ([]string, bool) {
			v, ok := ev.(*event.Event).OutputFields[arg]
			if !ok || v == nil {
				return buf, false
			}
			return append(buf, event.FieldText(v)), true
		}}, nil
	}
	return rules.Field{}, fmt.Errorf("unknown field %q: expected one of rule, priority, source, tags, hostname, output, output_fields[<name>]", name)
}
