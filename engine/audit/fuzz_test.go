package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/rules"
)

// FuzzParseAuditEvent feeds arbitrary payloads to the parser and every field extractor. It
// must never panic; it must reject what encoding/json rejects and accept what it accepts
// (up to the nesting cap); and the values it extracts must agree with encoding/json's.
// Seeds are in testdata/fuzz/FuzzParseAuditEvent.
func FuzzParseAuditEvent(f *testing.F) {
	f.Add([]byte(evA))
	f.Add([]byte(`{"kind":"EventList","items":[` + evA + `,` + evB + `]}`))
	src := NewSource()
	var fields []rules.Field
	for _, name := range src.FieldNames() {
		spec := fieldSpecs[name]
		args := []string{""}
		switch spec.arg {
		case argIndex:
			args = []string{"", "0", "1", "-1", "x"}
		case argKey:
			args = []string{"command", "/etc", "/proc*"}
		case argPointer:
			args = []string{"/verb", "/requestObject/spec/containers/0", "/a~1b/~0c", "/"}
		}
		for _, a := range args {
			fl, err := src.Field(name, a, a != "")
			if err != nil {
				f.Fatal(err)
			}
			fields = append(fields, fl)
		}
	}
	verb, _ := src.Field("ka.verb", "", false)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := Parser{MaxEventSize: 1 << 20}
		buf := make([]string, 0, 8)
		err := p.Parse(data, func(ev *Event) error {
			for _, fl := range fields {
				var ok bool
				buf, ok = fl.Extract(ev, buf)
				if ok && !fl.List && len(buf) != 1 {
					t.Fatalf("single-valued field gave %d values", len(buf))
				}
				if ok && len(buf) == 0 {
					t.Fatal("ok with no values")
				}
				fl.OutputValue(ev)
			}
			if !json.Valid(ev.Raw()) {
				t.Fatalf("yielded event is not valid JSON: %q", ev.Raw())
			}
			if v, isStr := firstTopString(ev.Raw(), "verb"); isStr {
				// encoding/json replaces invalid UTF-8, the plugin (fastjson) keeps the bytes.
				if got, ok := verb.Extract(ev, nil); !ok || string([]rune(got[0])) != v {
					t.Fatalf("ka.verb = %q (ok=%v), encoding/json says %q", got, ok, v)
				}
			}
			return nil
		}, func(*ItemError) {})
		var se *SyntaxError
		switch valid := json.Valid(data); {
		case !valid && err == nil:
			t.Fatalf("invalid JSON accepted: %q", data)
		case valid && errors.As(err, &se) && !strings.Contains(se.Msg, "nesting"):
			t.Fatalf("valid JSON rejected: %v", err)
		}
	})
}

// firstTopString decodes, with encoding/json, the first top-level member key of the object
// raw when it is a string (the plugin, like fastjson, uses the first of duplicate keys).
func firstTopString(raw []byte, key string) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", false
		}
		if tok == key {
			var s string
			err := json.Unmarshal(v, &s)
			return s, err == nil
		}
	}
	return "", false
}
