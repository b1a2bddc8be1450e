package chat

import (
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
)

func TestSuppressed(t *testing.T) {
	ev := &event.Event{Output: "out", OutputFields: map[string]any{}}
	if got := Suppressed(ev); got != "" || WithSuppressed("text", ev) != "text" || CutWithSuppressed("text", 3, ev) != "te…" {
		t.Errorf("an alert nothing was suppressed before: %q", got)
	}
	for _, c := range []struct {
		n      any
		window any
		want   string
	}{
		{12, "30s", "(12 similar alerts suppressed within 30s of the previous one)"},
		{1, "1m30s", "(1 similar alert suppressed within 1m30s of the previous one)"},
		{float64(3), nil, "(3 similar alerts suppressed)"}, // decoded from JSON, no window
	} {
		ev.OutputFields[delivery.SuppressedField] = c.n
		ev.OutputFields[delivery.SuppressedWindowField] = c.window
		if got := Suppressed(ev); got != c.want {
			t.Errorf("%v/%v: %q, want %q", c.n, c.window, got, c.want)
		}
	}
	marked := delivery.MarkSuppressed(&event.Event{OutputFields: map[string]any{}}, 2, time.Minute)
	if got := WithSuppressed("", marked); got != "(2 similar alerts suppressed within 1m0s of the previous one)" {
		t.Errorf("empty text: %q", got)
	}
	if got := CutWithSuppressed("abcdefgh", 69, marked); got != "abcdef…\n(2 similar alerts suppressed within 1m0s of the previous one)" {
		t.Errorf("cut: %q (%d)", got, len([]rune(got)))
	}
}
