package audit

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"
)

// Event is one Kubernetes audit event (audit.k8s.io Event) as the rule engine sees it: the
// raw JSON bytes, an index of the top-level members, the event time, and a per-field cache
// so a field used by many rules is extracted once.
//
// An Event does not copy its input: strings handed out by Field.Extract may point into the
// raw bytes and into a scratch buffer reused by the next Reset, so they are valid only until
// then. Field.OutputValue returns copies, safe to keep in an alert. An Event is not safe for
// concurrent use; reuse one per goroutine (see Parser).
type Event struct {
	raw   []byte
	top   []member
	sub   []member // members of top-level object values, see member.sub0
	memo  []memoEntry
	time  int64
	gen   uint32
	cache []slot
	arena []byte
}

// memoEntry remembers one child lookup, so the objects many fields go through
// (objectRef, requestObject.spec, ...) are walked once per event.
type memoEntry struct {
	parent int
	key    string
	val    span
	ok     bool
}

// maxMemo bounds the lookup memo; lookups beyond it are simply not remembered.
const maxMemo = 32

// slot caches one field's extraction for the event of generation gen.
type slot struct {
	gen  uint32
	ok   bool
	vals []string
}

// ErrNotAuditEvent is returned for JSON that is neither an audit Event, an EventList nor
// an array of them (Falco: "data not recognized as a k8s audit event").
var ErrNotAuditEvent = errors.New("data not recognized as a k8s audit event")

// ParseEvent parses one audit event object from raw, which must stay unmodified while the
// event is used. It is a convenience for tests and one-off use; hot paths reuse an Event
// through Reset.
func ParseEvent(raw []byte) (*Event, error) {
	ev := new(Event)
	if err := ev.Reset(raw); err != nil {
		return nil, err
	}
	return ev, nil
}

// Reset makes ev the event encoded by raw (one JSON object with a valid stageTimestamp),
// validating the whole object and indexing its top-level members. Values extracted from
// ev's previous content become invalid.
func (ev *Event) Reset(raw []byte) error {
	ev.clear()
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		if _, err := validate(raw, i, 0); err != nil {
			return err
		}
		return ErrNotAuditEvent
	}
	end, err := ev.indexObject(raw, i, true)
	if err != nil {
		return err
	}
	if j := skipSpace(raw, end); j != len(raw) {
		return syntaxErr(raw, j, "end of input after the event")
	}
	ev.raw = raw[i:end]
	ev.rebase(i)
	return ev.readTime()
}

func (ev *Event) clear() {
	ev.raw = nil
	ev.top = ev.top[:0]
	ev.sub = ev.sub[:0]
	ev.memo = ev.memo[:0]
	ev.time = 0
	ev.arena = ev.arena[:0]
	ev.gen++
	if ev.gen == 0 { // wrapped: stale slots could look current
		for k := range ev.cache {
			ev.cache[k].gen = 0
		}
		ev.gen = 1
	}
}

// indexObject records the members of the object at b[i], and the members of those of its
// values that are objects (most field paths go through one of them), validating every value
// when validate is set. It returns the offset after the object.
func (ev *Event) indexObject(b []byte, i int, validate bool) (int, error) {
	return ev.indexMembers(b, i, validate, 0)
}

func (ev *Event) indexMembers(b []byte, i int, validateValues bool, level int) (int, error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, syntaxErr(b, i, "a string key")
		}
		var ke int
		var esc bool
		if validateValues {
			var err error
			if ke, esc, err = scanString(b, i); err != nil {
				return ke, err
			}
		} else {
			ke = skipString(b, i)
			esc = bytes.IndexByte(b[i+1:ke-1], '\\') >= 0
		}
		j := skipSpace(b, ke)
		if j >= len(b) || b[j] != ':' {
			return j, syntaxErr(b, j, "':' after object key")
		}
		j = skipSpace(b, j+1)
		m := member{k0: int32(i + 1), k1: int32(ke - 1), v0: int32(j), esc: esc}
		var ve int
		var err error
		switch {
		case level == 0 && j < len(b) && b[j] == '{':
			idx := len(ev.top)
			m.sub0 = int32(len(ev.sub))
			ev.top = append(ev.top, m)
			if ve, err = ev.indexMembers(b, j, validateValues, 1); err != nil {
				return ve, err
			}
			t := &ev.top[idx]
			t.v1, t.sub1 = int32(ve), int32(len(ev.sub))
		case validateValues:
			if ve, err = validate(b, j, level+1); err != nil {
				return ve, err
			}
		default:
			ve = skip(b, j)
		}
		if !(level == 0 && b[j] == '{') {
			m.v1 = int32(ve)
			if level == 0 {
				ev.top = append(ev.top, m)
			} else {
				ev.sub = append(ev.sub, m)
			}
		}
		i = skipSpace(b, ve)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		return i, syntaxErr(b, i, "',' or '}' in object")
	}
}

func (ev *Event) readTime() error {
	v, ok := ev.topGet("stageTimestamp")
	if !ok {
		return errors.New("can't read stageTimestamp: missing")
	}
	s, isStr := ev.rawString(v)
	if !isStr {
		return fmt.Errorf("can't read stageTimestamp: not a string: %s", ev.raw[v.s:v.e])
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("can't read stageTimestamp %q: %w", s, err)
	}
	ev.time = t.UnixNano()
	return nil
}

// Raw returns the event's JSON bytes (not a copy).
func (ev *Event) Raw() []byte { return ev.raw }

// TimeNanos is the event time (stageTimestamp) in Unix nanoseconds.
func (ev *Event) TimeNanos() int64 { return ev.time }

// Time is the event time (stageTimestamp).
func (ev *Event) Time() time.Time { return time.Unix(0, ev.time) }

// find returns the index of the member named key in ms.
func (ev *Event) find(ms []member, key string) int {
	b := ev.raw
	for k := range ms {
		m := &ms[k]
		if int(m.k1-m.k0) != len(key) && !m.esc {
			continue
		}
		if !m.esc {
			if string(b[m.k0:m.k1]) == key {
				return k
			}
			continue
		}
		var tmp [64]byte
		if string(appendUnescaped(tmp[:0], b[m.k0:m.k1])) == key {
			return k
		}
	}
	return -1
}

// topGet returns the value of the top-level member key.
func (ev *Event) topGet(key string) (span, bool) {
	k := ev.find(ev.top, key)
	if k < 0 {
		return span{}, false
	}
	return span{int(ev.top[k].v0), int(ev.top[k].v1)}, true
}

// get follows path from the top of the event (object keys, or array indexes).
func (ev *Event) get(path ...string) (span, bool) {
	if len(path) == 0 {
		return span{0, len(ev.raw)}, ev.raw != nil
	}
	k := ev.find(ev.top, path[0])
	if k < 0 {
		return span{}, false
	}
	t := &ev.top[k]
	v := span{int(t.v0), int(t.v1)}
	if len(path) == 1 {
		return v, true
	}
	rest := path[1:]
	if t.sub1 > t.sub0 || ev.raw[t.v0] == '{' {
		// The second level is indexed.
		subs := ev.sub[t.sub0:t.sub1]
		c := ev.find(subs, path[1])
		if c < 0 {
			return span{}, false
		}
		v = span{int(subs[c].v0), int(subs[c].v1)}
		rest = path[2:]
	}
	ok := true
	for _, key := range rest {
		if v, ok = ev.child(v, key); !ok {
			break
		}
	}
	return v, ok
}

// child is the package's child lookup, remembered for the event's lifetime.
func (ev *Event) child(v span, key string) (span, bool) {
	for i := range ev.memo {
		m := &ev.memo[i]
		if m.parent == v.s && m.key == key {
			return m.val, m.ok
		}
	}
	c, ok := child(ev.raw, v, key)
	if len(ev.memo) < maxMemo {
		ev.memo = append(ev.memo, memoEntry{parent: v.s, key: key, val: c, ok: ok})
	}
	return c, ok
}

// kind tells a JSON value's type from its first byte.
func (ev *Event) kind(v span) byte {
	if v.s >= v.e {
		return 0
	}
	switch c := ev.raw[v.s]; c {
	case '"', '{', '[', 't', 'f', 'n':
		return c
	}
	return '0'
}

// rawString returns the decoded string value at v when it is a JSON string.
func (ev *Event) rawString(v span) (string, bool) {
	if ev.kind(v) != '"' {
		return "", false
	}
	body := ev.raw[v.s+1 : v.e-1]
	for _, c := range body {
		if c == '\\' {
			start := len(ev.arena)
			ev.arena = appendUnescaped(ev.arena, body)
			return ev.arenaString(start), true
		}
	}
	return bstr(body), true
}

// text renders the value at v as the plugins do: a string's decoded contents, anything
// else as compact JSON text.
func (ev *Event) text(v span) string {
	if s, ok := ev.rawString(v); ok {
		return s
	}
	b := ev.raw[v.s:v.e]
	if !hasSpaceOutsideStrings(b) {
		return bstr(b)
	}
	start := len(ev.arena)
	ev.arena = appendCompact(ev.arena, b)
	return ev.arenaString(start)
}

func (ev *Event) arenaString(start int) string { return bstr(ev.arena[start:]) }

func (ev *Event) appendInt(n int64) string {
	start := len(ev.arena)
	ev.arena = strconv.AppendInt(ev.arena, n, 10)
	return ev.arenaString(start)
}

// bstr views b as a string without copying. The bytes must not change while the string
// is in use: Event guarantees it until its next Reset.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (ev *Event) slot(id int) *slot {
	if id >= len(ev.cache) {
		n := id + 1
		if n < 2*len(ev.cache) {
			n = 2 * len(ev.cache)
		}
		c := make([]slot, n)
		copy(c, ev.cache)
		ev.cache = c
	}
	return &ev.cache[id]
}
