package chattest

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs/internal/chat"
)

// SuppressedLine is what a chat message says for SuppressedEvent.
const SuppressedLine = "(12 similar alerts suppressed within 30s of the previous one)"

// SuppressedEvent is the README's event as the engine hands it to an output after a dedup
// window suppressed 12 similar alerts within 30s.
func SuppressedEvent(t testing.TB) *event.Event {
	t.Helper()
	return delivery.MarkSuppressed(goldens.Events(t, nil)["readme_try_event"], 12, 30*time.Second)
}

// CheckSuppressed checks that text, a chat message's text made from SuppressedEvent, says
// SuppressedLine (escaping backslashes aside), and that msg, the whole message (encoded as
// the outputs encode it, or already encoded bytes), matches testdata/<variant>/suppressed.json
// (testdata/suppressed.json without variant).
func CheckSuppressed(t testing.TB, variant, text string, msg any) {
	t.Helper()
	if !strings.Contains(strings.ReplaceAll(text, `\`, ""), SuppressedLine) {
		t.Errorf("%s: no suppressed line in %q", variant, text)
	}
	body, ok := msg.([]byte)
	if !ok {
		var err error
		if body, err = chat.EncodeJSON(msg); err != nil {
			t.Fatal(err)
		}
	}
	goldens.Check(t, filepath.Join("testdata", variant, "suppressed.json"), goldens.IndentJSON(t, body))
}
