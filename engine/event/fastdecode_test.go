package event_test

import (
	"bytes"
	"os"
	"reflect"
	"testing"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
)

// TestDecodeBytesTakesFalcoEvents holds the fast scan to the events Falco and falcosidekick
// send (testdata/falcosidekick/events): it must read each of them itself, exactly as Decode
// does, or DecodeBytes would silently fall back to the slow path for everyone.
func TestDecodeBytesTakesFalcoEvents(t *testing.T) {
	for _, p := range goldens.Glob(t, goldens.Path("falcosidekick", "events", "*.json")) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fast, ok := event.DecodeFast(b)
		if !ok {
			t.Errorf("%s: the fast scan left a Falco event to the slow path", p)
			continue
		}
		slow, err := event.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s: fast and slow decoding differ:\n%#v\n%#v", p, fast, slow)
		}
	}
}

// TestDecodeBytesFallsBack checks that bodies outside the scan's subset still decode (or
// fail with Decode's message) through DecodeBytes.
func TestDecodeBytesFallsBack(t *testing.T) {
	for body, want := range map[string]string{
		`{"Priority":"Error","rule":"r","time":"2019-05-17T15:31:56Z"}`:                             "", // field names match in any case
		`{"priority":"Error","rule":"r\ud83d\ude00","time":"2019-05-17T15:31:56Z"}`:                 "", // a surrogate pair
		`{"priority":"Error","rule":"r","time":"2019-05-17T15:31:56Z","output_fields":{"a":[1,2]}}`: "", // a non-scalar field
		`{"priority":"Error","rule":"r","time":"2019-05-17T15:31:56Z"} x`:                           "invalid JSON: unexpected data after the event at offset 61",
		`{"priority":"Loud","rule":"r","time":"2019-05-17T15:31:56Z"}`:                              `priority "Loud" is not one of`,
	} {
		ev, err := event.DecodeBytes([]byte(body))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", body, err)
		case want == "" && ev.Rule == "":
			t.Errorf("%s: decoded without its rule", body)
		case want != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(want))):
			t.Errorf("%s: error %v, want %q", body, err, want)
		}
	}
}

// TestDecodeStoredKeepsTheBytes checks that an event read back from a durable bus sends the
// stored bytes rather than encoding itself again, and that those bytes are its encoding.
func TestDecodeStoredKeepsTheBytes(t *testing.T) {
	for name, ev := range goldens.Events(t, func(n string) string { return "uuid-" + n }) {
		stored := append([]byte(nil), ev.JSON()...)
		back, err := event.DecodeStored(stored)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := back.JSON(); &got[0] != &stored[0] {
			t.Errorf("%s: the stored bytes were encoded again", name)
		}
		if again := back.Clone().JSON(); !bytes.Equal(again, stored) {
			t.Errorf("%s: stored bytes are not the event's encoding:\n%s\n%s", name, stored, again)
		}
	}
}
