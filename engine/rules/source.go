// Package rules is saker's Falco-compatible rule engine: it loads Falco rule files (rules,
// macros, lists, exceptions, append/override), compiles conditions to closures once, evaluates
// them against events of one source and renders Falco's alert. It knows nothing about HTTP or
// about the shape of an audit event: a Source supplies the fields.
package rules

// Source supplies the fields of one event source (k8s_audit). The rule engine asks it once per
// field reference at load time and keeps the returned Field, so per-event work is only the
// Extract call.
type Source interface {
	// Name is the Falco source name rules declare with `source:` ("k8s_audit").
	Name() string
	// Field resolves a field reference such as "ka.user.name", "ka.uri.param" with arg "foo"
	// or "jevt.value" with arg "/spec/x". hasArg tells "ka.x[]" style empty args apart from
	// no brackets. The error names the field (and argument) when it is unknown, needs an
	// argument it was not given, or got one it does not take.
	Field(name, arg string, hasArg bool) (Field, error)
	// TimeNanos is the event's time in Unix nanoseconds (evt.time, the alert time).
	TimeNanos(ev any) int64
}

// Field is a compiled field accessor.
type Field struct {
	// List is true for list fields, which accept only exists, in and intersects.
	List bool
	// Numeric is true for a field Falco types as a number (PT_UINT64, PT_ABSTIME) rather than
	// a string: it accepts only =, !=, <, <=, >, >=, in, intersects and exists, values written
	// for it must be unsigned integers, and string transformers (tolower...) refuse it.
	// Extract must return canonical decimal text (strconv.FormatUint).
	Numeric bool
	// Extract returns the field's values for ev, appending to buf[:0] to avoid allocation.
	// A non-list field returns exactly one value. ok is false when the value cannot be
	// extracted; an empty list is reported as ok=false too (Falco treats it as missing).
	Extract func(ev any, buf []string) (vals []string, ok bool)
	// Literal, when set, turns a value written in a condition into the form Extract returns,
	// or refuses it: an ordered field (an alert's priority) extracts a number and lets
	// conditions name its levels (`priority >= warning`).
	Literal func(lit string) (string, error)
	// OutputValue renders the value for an alert's output_fields (string, []string, or an
	// int64 for evt.time); nil when missing. May be nil, in which case Extract is used.
	OutputValue func(ev any) any
}
