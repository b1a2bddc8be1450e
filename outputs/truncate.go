package outputs

import (
	"strings"
	"unicode/utf8"

	"github.com/saker-dev/saker/engine/event"
)

// Field truncation as falcosidekick applies it (since 2.29, for chat services that refuse
// long messages): when an event's JSON is longer than TruncateEventOver bytes, every string
// output field longer than TruncateFieldOver bytes is cut to that length, ending in
// TruncationMark, and the same cut is made where the value appears in the output line.
const (
	TruncateEventOver = 4096
	TruncateFieldOver = 512
	TruncationMark    = "[...]"
)

// TruncateLongFields returns ev unchanged, or a copy with falcosidekick's field truncation
// applied when ev is long enough for it. Outputs whose messages are read by people (chat,
// mail, Alertmanager) call it in their payload builder; the shared event is never changed.
// Unlike falcosidekick, the cut falls on a character boundary, so the text stays valid
// UTF-8.
func TruncateLongFields(ev *event.Event) *event.Event {
	long := false
	for _, v := range ev.OutputFields {
		if s, ok := v.(string); ok && len(s) > TruncateFieldOver {
			long = true
			break
		}
	}
	if !long || len(ev.JSON()) <= TruncateEventOver {
		return ev
	}
	c := ev.Clone()
	for k, v := range c.OutputFields {
		s, ok := v.(string)
		if !ok || len(s) <= TruncateFieldOver {
			continue
		}
		cut := cutAt(s, TruncateFieldOver-len(TruncationMark)) + TruncationMark
		c.Output = strings.ReplaceAll(c.Output, s, cut)
		c.OutputFields[k] = cut
	}
	return c
}

// cutAt returns the longest prefix of s of at most n bytes that ends on a rune boundary.
func cutAt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
