package event

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// reference is the event encoded by encoding/json's reflection, the definition AppendJSON
// must match byte for byte.
func reference(t *testing.T, e *Event) []byte {
	t.Helper()
	type wire struct {
		UUID         string         `json:"uuid,omitempty"`
		Output       string         `json:"output"`
		Priority     Priority       `json:"priority"`
		Rule         string         `json:"rule"`
		Time         string         `json:"time"`
		OutputFields map[string]any `json:"output_fields"`
		Source       string         `json:"source"`
		Tags         []string       `json:"tags,omitempty"`
		Hostname     string         `json:"hostname,omitempty"`
	}
	fields := e.OutputFields
	if fields == nil {
		fields = map[string]any{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(wire{e.UUID, e.Output, e.Priority, e.Rule, e.Time.Format(TimeLayout), fields, e.Source, e.Tags, e.Hostname}); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// TestAppendJSONMatchesEncodingJSON holds the hand-written encoder to encoding/json on
// strings with every kind of character to escape and on every kind of field value.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	special := []string{"", "plain", "quote\" back\\slash", "\b\f\n\r\t\x00\x01\x1f\x7f", "<html>&amp;",
		"é ü 日本 \U0001F600", "\u2028\u2029", "bad \xff\xfe utf8 \xc3", "\xe2\x80", "/slash"}
	for i := 0; i < 300; i++ {
		b := make([]byte, rnd.IntN(24))
		for j := range b {
			b[j] = byte(rnd.IntN(256))
		}
		special = append(special, string(b))
	}
	var evs []*Event
	for i, s := range special {
		evs = append(evs, &Event{UUID: s, Output: s, Priority: Priority(i % 9), Rule: s,
			Time: time.Unix(int64(i)*1e6, int64(i)*7).UTC(), Source: s, Hostname: s, Tags: []string{s, "t"},
			OutputFields: map[string]any{s: s, "b" + s: []string{s, s}, "n": nil, "i": int64(i), "l": []string{},
				"z": []string(nil), "t": true, "f": 1.5e-7, "num": json.Number("1507591916746609046"),
				"a": []any{"x", json.Number("2"), nil, map[string]any{"k<": "v&"}}, "m": map[string]any{"z": 1, "a": "b"}}})
	}
	evs = append(evs, &Event{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))},
		&Event{OutputFields: map[string]any{"ok": json.Number("-0.5E+3"), "zero": json.Number("0")}})
	var keys []string
	for i, e := range evs {
		got := e.AppendJSON(nil, &keys)
		if want := reference(t, e); !bytes.Equal(got, want) {
			t.Errorf("event %d:\n got %s\nwant %s", i, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("event %d: invalid JSON %s", i, got)
		}
	}
}

// TestAppendJSONStaysValid: a value encoding/json refuses still yields a valid document.
func TestAppendJSONStaysValid(t *testing.T) {
	e := &Event{OutputFields: map[string]any{"bad": json.Number("1e"), "ch": make(chan int)}}
	if got := e.AppendJSON(nil, nil); !json.Valid(got) {
		t.Fatalf("invalid JSON: %s", got)
	}
}
