package event

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// DecodeBytes is Decode for a body already in memory. Events shaped as Falco writes them —
// the known keys in lower case, output_fields of scalars and lists of scalars — are read by a
// single scan with no reflection (decoding was a tenth of saker's CPU per event at full
// ingest rate); anything else, including every invalid body, goes through Decode, which
// gives the same result and the precise error message. FuzzDecodeBytes holds the two paths
// to the same answer.
func DecodeBytes(b []byte) (*Event, error) {
	if ev, ok := decodeFast(b); ok {
		return ev, nil
	}
	return Decode(bytes.NewReader(b))
}

// DecodeStored decodes data that AppendJSON produced (an event read back from a durable
// bus) and keeps data as the event's JSON, so it is not encoded again. data must not be
// modified afterwards.
func DecodeStored(data []byte) (*Event, error) {
	ev, err := DecodeBytes(data)
	if err != nil {
		return nil, err
	}
	ev.jsonOnce.Do(func() { ev.jsonBody = data })
	return ev, nil
}

// fastScanner reads the subset of JSON decodeFast accepts; any byte outside it ends the scan
// with ok=false.
type fastScanner struct {
	b  []byte
	i  int
	ok bool
}

func (s *fastScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips whitespace and then c.
func (s *fastScanner) consume(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// peek skips whitespace and returns the next byte (0 at the end).
func (s *fastScanner) peek() byte {
	s.space()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// rawString returns a string's decoded bytes. Escapes are decoded except \u surrogates;
// those, control characters and invalid UTF-8 end the scan. Without escapes the result
// aliases s.b.
func (s *fastScanner) rawString() []byte {
	if !s.consume('"') {
		s.ok = false
		return nil
	}
	start := s.i
	ascii := true
	var out []byte // the decoded string once an escape was met
	b := s.b
	for {
		i := s.i
		for i < len(b) && !stringSpecial[b[i]] {
			i++
		}
		s.i = i
		if i == len(b) {
			s.ok = false
			return nil
		}
		switch c := b[i]; {
		case c == '"':
			v := b[start:i]
			if out != nil {
				v = append(out, v...)
			}
			s.i++
			if !ascii && !utf8.Valid(v) {
				s.ok = false
			}
			return v
		case c == '\\':
			out = append(out, b[start:i]...)
			var next int
			if out, next = unescape(out, b, i); next < 0 {
				s.ok = false
				return nil
			}
			s.i, start = next, next
		case c < 0x20:
			s.ok = false
			return nil
		default: // c >= 0x80, checked once the string ends
			ascii = false
			s.i++
		}
	}
}

// stringSpecial marks the bytes that end rawString's fast loop: the closing quote, an
// escape, control characters and non-ASCII bytes.
var stringSpecial = func() (t [256]bool) {
	for c := range t {
		t[c] = c == '"' || c == '\\' || c < 0x20 || c >= 0x80
	}
	return t
}()

// unescape appends the character of the escape at b[i] to out and returns the index after
// it, or -1 for an escape it does not decode.
func unescape(out, b []byte, i int) ([]byte, int) {
	if i+1 >= len(b) {
		return out, -1
	}
	switch b[i+1] {
	case '"', '\\', '/':
		return append(out, b[i+1]), i + 2
	case 'b':
		return append(out, '\b'), i + 2
	case 'f':
		return append(out, '\f'), i + 2
	case 'n':
		return append(out, '\n'), i + 2
	case 'r':
		return append(out, '\r'), i + 2
	case 't':
		return append(out, '\t'), i + 2
	case 'u':
		if i+6 > len(b) {
			return out, -1
		}
		var r rune
		for _, h := range b[i+2 : i+6] {
			switch {
			case h >= '0' && h <= '9':
				r = r<<4 | rune(h-'0')
			case h >= 'a' && h <= 'f':
				r = r<<4 | rune(h-'a'+10)
			case h >= 'A' && h <= 'F':
				r = r<<4 | rune(h-'A'+10)
			default:
				return out, -1
			}
		}
		if utf16.IsSurrogate(r) {
			return out, -1
		}
		return utf8.AppendRune(out, r), i + 6
	}
	return out, -1
}

func (s *fastScanner) str() string { return string(s.rawString()) }

// number returns a number literal that follows JSON's grammar exactly.
func (s *fastScanner) number() json.Number {
	b, start := s.b, s.i
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		s.ok = false
		return ""
	}
	digits := func() bool {
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > d
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			s.ok = false
			return ""
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			s.ok = false
			return ""
		}
	}
	s.i = i
	return json.Number(b[start:i])
}

// literal consumes word (true, false, null).
func (s *fastScanner) literal(word string) {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		s.ok = false
		return
	}
	s.i += len(word)
}

// value reads an output_fields value: a string, a number, a boolean, null or an array of
// those (Falco's list fields). Objects and nested arrays are left to Decode.
func (s *fastScanner) value() any {
	if s.peek() == '[' {
		s.i++
		list := []any{}
		if s.consume(']') {
			return list
		}
		for s.ok {
			list = append(list, s.scalar())
			if s.consume(']') {
				return list
			}
			if !s.consume(',') {
				s.ok = false
			}
		}
		return nil
	}
	return s.scalar()
}

// scalar reads a string, a number, a boolean or null.
func (s *fastScanner) scalar() any {
	switch c := s.peek(); {
	case c == '"':
		return s.str()
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		s.literal("true")
		return true
	case c == 'f':
		s.literal("false")
		return false
	case c == 'n':
		s.literal("null")
		return nil
	}
	s.ok = false
	return nil
}

// members calls member for each key of an object until it or the scan fails.
func (s *fastScanner) members(member func(key []byte)) {
	if !s.consume('{') {
		s.ok = false
		return
	}
	if s.consume('}') {
		return
	}
	for s.ok {
		key := s.rawString()
		if !s.ok || !s.consume(':') {
			s.ok = false
			return
		}
		member(key)
		if !s.ok {
			return
		}
		if s.consume('}') {
			return
		}
		if !s.consume(',') {
			s.ok = false
		}
	}
}

// decodeFast reads a valid event in the shape Falco sends; ok=false means Decode must
// decide (an unusual shape or an invalid event).
func decodeFast(b []byte) (*Event, bool) {
	s := &fastScanner{b: b, ok: true}
	var ev Event
	var priority, ts string
	var seen uint16
	s.members(func(key []byte) {
		var bit uint16
		switch string(key) {
		case "uuid":
			bit, ev.UUID = 1<<0, s.str()
		case "output":
			bit, ev.Output = 1<<1, s.str()
		case "priority":
			bit, priority = 1<<2, s.str()
		case "rule":
			bit, ev.Rule = 1<<3, s.str()
		case "time":
			bit, ts = 1<<4, s.str()
		case "source":
			bit, ev.Source = 1<<5, s.str()
		case "hostname":
			bit, ev.Hostname = 1<<6, s.str()
		case "tags":
			bit = 1 << 7
			ev.Tags = s.tags()
		case "output_fields":
			bit = 1 << 8
			if s.peek() == 'n' {
				s.literal("null")
				break
			}
			ev.OutputFields = map[string]any{}
			s.members(func(k []byte) { ev.OutputFields[string(k)] = s.value() })
		default: // a key in another case, or one Falco does not send
			s.ok = false
		}
		if seen&bit != 0 { // a repeated key: Decode applies its rules
			s.ok = false
		}
		seen |= bit
	})
	s.space()
	if !s.ok || s.i != len(b) || seen&(1<<2) == 0 {
		return nil, false
	}
	prio, err := ParsePriority(priority)
	if err != nil || prio == Default || ev.Rule == "" || ts == "" {
		return nil, false
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil || t.IsZero() {
		return nil, false
	}
	ev.Priority, ev.PriorityRaw, ev.Time = prio, priority, t
	return &ev, true
}

// tags reads an array of strings (null: none).
func (s *fastScanner) tags() []string {
	if s.peek() == 'n' {
		s.literal("null")
		return nil
	}
	if !s.consume('[') {
		s.ok = false
		return nil
	}
	tags := []string{}
	if s.consume(']') {
		return tags
	}
	for s.ok {
		tags = append(tags, s.str())
		if s.consume(']') {
			return tags
		}
		if !s.consume(',') {
			s.ok = false
		}
	}
	return nil
}
