package audit

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/rules"
)

// TestAlertJSONMatchesEvent holds replay's encoder to (*event.Event).JSON, byte for byte:
// on every alert of the traces and on strings with every kind of character to escape.
func TestAlertJSONMatchesEvent(t *testing.T) {
	var alerts []*event.Event
	for _, mode := range []rules.Matching{rules.MatchFirst, rules.MatchAll} {
		e := loadEngine(t, mode, "DEFAULT")
		for _, path := range traceFiles(t) {
			var p Parser
			for _, line := range traceLines(t, path) {
				_ = p.Parse(line, func(ev *Event) error {
					e.Evaluate(ev, func(a *event.Event) { alerts = append(alerts, a) })
					return nil
				}, nil)
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatal("no alerts from the traces")
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	special := []string{"", "plain", "quote\" back\\slash", "\b\f\n\r\t\x00\x01\x1f\x7f", "<html>&amp;",
		"é ü 日本 \U0001F600", "\u2028\u2029", "bad \xff\xfe utf8 \xc3", "\xe2\x80", "/slash"}
	for i := 0; i < 200; i++ {
		b := make([]byte, rnd.IntN(24))
		for j := range b {
			b[j] = byte(rnd.IntN(256))
		}
		special = append(special, string(b))
	}
	for i, s := range special {
		alerts = append(alerts, &event.Event{UUID: s, Output: s, Priority: event.Priority(i % 9), Rule: s,
			Time: time.Unix(int64(i)*1e6, int64(i)*7).UTC(), Source: s, Hostname: s,
			Tags:         []string{s, "t"},
			OutputFields: map[string]any{s: s, "b" + s: []string{s, s}, "n": nil, "i": int64(i), "l": []string{}, "z": []string(nil), "t": true}})
	}
	alerts = append(alerts, &event.Event{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))})
	var keys []string
	for i, a := range alerts {
		got, ok := appendAlertJSON(nil, a, &keys)
		if !ok {
			t.Errorf("alert %d: not encoded", i)
			continue
		}
		if want := a.JSON(); !bytes.Equal(got, want) {
			t.Errorf("alert %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// Unknown value types are left to event.JSON.
	if _, ok := appendAlertJSON(nil, &event.Event{OutputFields: map[string]any{"x": 1.5}}, &keys); ok {
		t.Error("float64 output field encoded, want fallback")
	}
}
