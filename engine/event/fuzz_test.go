package event

import (
	"bytes"
	"testing"
)

// FuzzDecode checks that Decode never panics and that any accepted event re-encodes to JSON
// that Decode accepts again with the same fields. The seed corpus in testdata/fuzz/FuzzDecode
// holds the shared sample events and malformed variants.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(validEvent))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Decode(bytes.NewReader(body))
		if err != nil {
			if ev != nil {
				t.Fatalf("Decode returned an event with error %v", err)
			}
			return
		}
		checkRoundTrip(t, ev)
	})
}
