package outputs

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/saker-dev/saker/engine/event"
)

func TestTruncateLongFields(t *testing.T) {
	long := strings.Repeat("a", 3000)
	ev := &event.Event{Rule: "r", Output: "cmd=" + long + " user=root", Priority: event.Warning,
		OutputFields: map[string]any{"proc.cmdline": long, "user.name": "root", "n": 3}}
	got := TruncateLongFields(ev)
	if got == ev {
		t.Fatal("a 3000-byte field in a long event was not cut")
	}
	cut := got.OutputFields["proc.cmdline"].(string)
	if len(cut) != TruncateFieldOver || !strings.HasSuffix(cut, TruncationMark) || cut[:507] != long[:507] {
		t.Errorf("cut field: %d bytes, suffix %q", len(cut), cut[len(cut)-6:])
	}
	if got.Output != "cmd="+cut+" user=root" || got.OutputFields["user.name"] != "root" || got.OutputFields["n"] != 3 {
		t.Errorf("output %q, fields %v", got.Output[:20], got.OutputFields["user.name"])
	}
	if ev.OutputFields["proc.cmdline"] != long || !strings.Contains(ev.Output, long) {
		t.Error("the shared event was modified")
	}

	// A long field in a short event, and short fields in a long event, are left alone.
	medium := strings.Repeat("b", 600)
	short := &event.Event{Rule: "r", Output: "o", OutputFields: map[string]any{"f": medium}}
	if TruncateLongFields(short) != short {
		t.Error("event under 4096 bytes was cut")
	}
	many := &event.Event{Rule: "r", Output: "o", OutputFields: map[string]any{}}
	for i := 0; i < 20; i++ {
		many.OutputFields[strings.Repeat("k", i+1)] = strings.Repeat("c", 400)
	}
	if TruncateLongFields(many) != many {
		t.Error("fields under 512 bytes were cut")
	}

	// The cut never splits a character.
	runes := strings.Repeat("é", 2500)
	got = TruncateLongFields(&event.Event{Rule: "r", Output: runes, OutputFields: map[string]any{"f": runes}})
	s := got.OutputFields["f"].(string)
	if !utf8.ValidString(s) || len(s) > TruncateFieldOver || !strings.HasSuffix(s, TruncationMark) || !utf8.ValidString(got.Output) {
		t.Errorf("multi-byte cut: %d bytes, valid %v", len(s), utf8.ValidString(s))
	}
}
