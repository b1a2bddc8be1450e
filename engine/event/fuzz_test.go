package event

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode checks that Decode never panics, that any accepted event re-encodes to JSON
// that Decode accepts again with the same fields, and that DecodeBytes' scan, whenever it
// takes a body, reads exactly what Decode reads from it. The seed corpus in
// testdata/fuzz/FuzzDecode holds the shared sample events and malformed variants.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(validEvent))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Decode(bytes.NewReader(body))
		if fast, ok := decodeFast(body); ok {
			if err != nil {
				t.Fatalf("the fast scan accepted a body Decode rejects (%v): %q", err, body)
			}
			if !reflect.DeepEqual(fast, ev) {
				t.Fatalf("the fast scan read %q differently:\n%#v\n%#v", body, fast, ev)
			}
		}
		if err != nil {
			if ev != nil {
				t.Fatalf("Decode returned an event with error %v", err)
			}
			return
		}
		checkRoundTrip(t, ev)
	})
}
