package event

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
)

// Event is one Falco alert. Once enriched it is shared read-only by every output: nothing
// downstream of enrichment may modify it (falcosidekick crashed on concurrent map writes when
// outputs did). Outputs that need a changed view build their own copy.
type Event struct {
	UUID         string         `json:"uuid,omitempty"`
	Output       string         `json:"output"`
	Priority     Priority       `json:"priority"`
	Rule         string         `json:"rule"`
	Time         time.Time      `json:"time"`
	OutputFields map[string]any `json:"output_fields"`
	Source       string         `json:"source"`
	Tags         []string       `json:"tags,omitempty"`
	Hostname     string         `json:"hostname,omitempty"`

	// PriorityRaw is the priority as the sender spelled it, for the priority_raw metric label.
	PriorityRaw string `json:"-"`
	// Received is when saker accepted the event, for delivery latency.
	Received time.Time `json:"-"`
	// UUIDAssigned is set when saker gave the event its UUID on intake: no earlier copy of
	// it can have been stored, so the durable bus skips its duplicate check.
	UUIDAssigned bool `json:"-"`

	jsonOnce sync.Once
	jsonBody []byte
}

// JSON returns the event's Falco JSON encoding, computed once and shared: the webhook, file
// and stdout outputs send these bytes as they are. The bytes must not be modified. HTML
// characters are not escaped (falcosidekick's \u003c escaping is a listed defect).
func (e *Event) JSON() []byte {
	e.jsonOnce.Do(func() { e.jsonBody = e.AppendJSON(make([]byte, 0, 512), nil) })
	return e.jsonBody
}

// MarshalJSON encodes the event as Falco JSON.
func (e *Event) MarshalJSON() ([]byte, error) { return e.JSON(), nil }

// Clone returns a deep-enough copy for an output that wants to change fields or tags.
func (e *Event) Clone() *Event {
	c := &Event{UUID: e.UUID, Output: e.Output, Priority: e.Priority, Rule: e.Rule, Time: e.Time,
		Source: e.Source, Hostname: e.Hostname, PriorityRaw: e.PriorityRaw, Received: e.Received,
		UUIDAssigned: e.UUIDAssigned}
	c.OutputFields = make(map[string]any, len(e.OutputFields))
	for k, v := range e.OutputFields {
		c.OutputFields[k] = v
	}
	c.Tags = append([]string(nil), e.Tags...)
	return c
}

// ValidationError is a client error in an incoming event; the HTTP input answers 400 with it.
// Err is the underlying read error, if any (an *http.MaxBytesError for an oversized body).
type ValidationError struct {
	Msg string
	Err error
}

func (e *ValidationError) Error() string { return e.Msg }

// Unwrap returns the read error that caused the validation failure, if any.
func (e *ValidationError) Unwrap() error { return e.Err }

// Decode reads one Falco event from r, validating it as falcosidekick does (known priority,
// non-empty rule, non-zero time) but with a message that says what is wrong and where.
// Numbers in output_fields keep their exact spelling (json.Number).
func Decode(r io.Reader) (*Event, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var in *struct {
		UUID         string         `json:"uuid"`
		Output       string         `json:"output"`
		Priority     *string        `json:"priority"`
		Rule         string         `json:"rule"`
		Time         string         `json:"time"`
		OutputFields map[string]any `json:"output_fields"`
		Source       string         `json:"source"`
		Tags         []string       `json:"tags"`
		Hostname     string         `json:"hostname"`
	}
	if err := dec.Decode(&in); err != nil {
		return nil, &ValidationError{Msg: describeJSONError(err, dec), Err: err}
	}
	if in == nil {
		return nil, &ValidationError{Msg: "invalid event: the body must be a JSON object, got null"}
	}
	// Anything but the end of the body after the object is an error, including a stray
	// closing bracket (which Decoder.More would not report).
	end := dec.InputOffset()
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var syn *json.SyntaxError
		if err != nil && !errors.As(err, &syn) {
			return nil, &ValidationError{Msg: "invalid JSON: " + err.Error(), Err: err}
		}
		return nil, &ValidationError{Msg: fmt.Sprintf("invalid JSON: unexpected data after the event at offset %d", end)}
	}
	if in.Priority == nil {
		return nil, &ValidationError{Msg: `missing "priority": expected one of ` + PriorityNames}
	}
	prio, err := ParsePriority(*in.Priority)
	if err != nil || prio == Default {
		return nil, &ValidationError{Msg: fmt.Sprintf("priority %q is not one of %s", *in.Priority, PriorityNames)}
	}
	if in.Rule == "" {
		return nil, &ValidationError{Msg: `missing or empty "rule"`}
	}
	if in.Time == "" {
		return nil, &ValidationError{Msg: `missing "time": expected an RFC 3339 timestamp such as "2019-05-17T15:31:56.746609046Z"`}
	}
	t, err := time.Parse(time.RFC3339Nano, in.Time)
	if err != nil {
		return nil, &ValidationError{Msg: fmt.Sprintf("\"time\" %q is not an RFC 3339 timestamp: %v", in.Time, err)}
	}
	if t.IsZero() {
		return nil, &ValidationError{Msg: `"time" is the zero time`}
	}
	return &Event{UUID: in.UUID, Output: in.Output, Priority: prio, PriorityRaw: *in.Priority, Rule: in.Rule,
		Time: t, OutputFields: in.OutputFields, Source: in.Source, Tags: in.Tags, Hostname: in.Hostname}, nil
}

func describeJSONError(err error, dec *json.Decoder) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at offset %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("invalid event: the body must be a JSON object, got JSON %s", typ.Value)
		}
		field, _, _ := strings.Cut(typ.Field, ".") // "tags.0" names an element of tags
		want := jsonTypeName(typ.Type)
		if field == "tags" && typ.Type.Kind() == reflect.String {
			want = "an array of strings"
		}
		return fmt.Sprintf("invalid event: field %q must be %s, got JSON %s at offset %d", field, want, typ.Value, typ.Offset)
	case errors.Is(err, io.EOF):
		return "empty body: expected a Falco event JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("invalid JSON: unexpected end of body at offset %d", dec.InputOffset())
	}
	return "invalid JSON: " + err.Error()
}

// jsonTypeName names a Go type the way a JSON sender thinks of it.
func jsonTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Bool:
		return "a boolean"
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	}
	return "a number"
}
