package audit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds the small JSON scanner the audit source is built on. Audit events are
// kept as raw bytes: one validating pass records where each top-level member's value
// lies, and fields then look values up by walking only the spans they need. Nothing is
// decoded into maps or interfaces, which is what makes rule evaluation cheap.

// maxDepth bounds nesting so a hostile body of a million '[' cannot exhaust the stack.
const maxDepth = 512

// SyntaxError is a JSON syntax error at a byte offset of the input.
type SyntaxError struct {
	Offset int    // byte offset of the offending character
	Msg    string // what was wrong there
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.Offset, e.Msg)
}

func syntaxErr(b []byte, i int, what string) error {
	if i >= len(b) {
		return &SyntaxError{Offset: i, Msg: "unexpected end of input, expected " + what}
	}
	return &SyntaxError{Offset: i, Msg: fmt.Sprintf("unexpected %s, expected %s", describeByte(b[i]), what)}
}

func describeByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// span is the half-open byte range [s, e) of one JSON value in its buffer.
type span struct{ s, e int }

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// validate checks that b[i:] starts with one valid JSON value and returns the offset just
// after it.
func validate(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, syntaxErr(b, i, "a value")
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := scanString(b, i)
		return end, err
	case c == '{':
		if depth >= maxDepth {
			return i, &SyntaxError{Offset: i, Msg: "nesting deeper than 512 levels"}
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, syntaxErr(b, i, "a string key")
			}
			end, _, err := scanString(b, i)
			if err != nil {
				return end, err
			}
			i = skipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return i, syntaxErr(b, i, "':' after object key")
			}
			i = skipSpace(b, i+1)
			if i, err = validate(b, i, depth+1); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				return i + 1, nil
			}
			return i, syntaxErr(b, i, "',' or '}' in object")
		}
	case c == '[':
		if depth >= maxDepth {
			return i, &SyntaxError{Offset: i, Msg: "nesting deeper than 512 levels"}
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = validate(b, i, depth+1); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == ']' {
				return i + 1, nil
			}
			return i, syntaxErr(b, i, "',' or ']' in array")
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	}
	return i, syntaxErr(b, i, "a value")
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	return i, &SyntaxError{Offset: i, Msg: "invalid literal, expected " + lit}
}

func scanNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
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
		return i, syntaxErr(b, i, "a digit in number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return i, syntaxErr(b, i, "a digit after decimal point")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return i, syntaxErr(b, i, "a digit in exponent")
		}
	}
	_ = start
	return i, nil
}

// scanString validates the string starting at b[i] == '"' and returns the offset after its
// closing quote and whether it contains escapes.
func scanString(b []byte, i int) (int, bool, error) {
	i++
	esc := false
	for {
		// Fast path: eight bytes at a time while none is a quote, a backslash or a
		// control character, then byte by byte.
		j := i
		for j+8 <= len(b) && !hasStringSpecial(binary.LittleEndian.Uint64(b[j:])) {
			j += 8
		}
		for j < len(b) {
			c := b[j]
			if c == '"' || c == '\\' || c < 0x20 {
				break
			}
			j++
		}
		if j >= len(b) {
			return j, esc, &SyntaxError{Offset: j, Msg: "unexpected end of input in string"}
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, esc, nil
		case c < 0x20:
			return j, esc, &SyntaxError{Offset: j, Msg: fmt.Sprintf("control character 0x%02x in string", c)}
		}
		esc = true
		j++
		if j >= len(b) {
			return j, esc, &SyntaxError{Offset: j, Msg: "unexpected end of input in string escape"}
		}
		switch b[j] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i = j + 1
		case 'u':
			if len(b)-j < 5 {
				return j, esc, &SyntaxError{Offset: j, Msg: "truncated \\u escape"}
			}
			for k := j + 1; k < j+5; k++ {
				if !isHex(b[k]) {
					return k, esc, &SyntaxError{Offset: k, Msg: "invalid hex digit in \\u escape"}
				}
			}
			i = j + 5
		default:
			return j, esc, &SyntaxError{Offset: j, Msg: "invalid escape " + describeByte(b[j])}
		}
	}
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasStringSpecial reports whether one of the eight bytes of x is '"', '\\' or below 0x20
// (the SWAR "has zero byte" and "has byte less than" tests; exact as a yes/no answer).
func hasStringSpecial(x uint64) bool {
	q := x ^ (lsb * '"')
	bs := x ^ (lsb * '\\')
	return ((q-lsb)&^q|(bs-lsb)&^bs|(x-lsb*0x20)&^x)&msb != 0
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// skip returns the offset just after the value starting at b[i], which must be valid JSON
// (it has been validated before): it is the cheap walk used by field lookups.
func skip(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\n', '\r', '\t':
				return i
			}
			i++
		}
		return i
	}
}

// skipString returns the offset after the closing quote of the string starting at b[i].
func skipString(b []byte, i int) int {
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		i += j
		// Count the backslashes before the quote: an odd number escapes it.
		n := 0
		for k := i - 1; k >= 0 && b[k] == '\\'; k-- {
			n++
		}
		i++
		if n%2 == 0 {
			return i
		}
	}
}

// member is one key/value pair of an object: key is the raw key without quotes.
type member struct {
	k0, k1 int32
	v0, v1 int32
	// sub0:sub1 is, for a top-level member whose value is an object, the range of
	// Event.sub holding that object's members.
	sub0, sub1 int32
	esc        bool // the key has escapes, compare it decoded
}

// objIter walks the members of a validated object.
type objIter struct {
	b []byte
	i int
	// current member
	key    []byte
	keyEsc bool
	val    span
}

func newObjIter(b []byte, v span) objIter {
	if v.s >= v.e || b[v.s] != '{' {
		return objIter{b: b, i: -1}
	}
	return objIter{b: b, i: v.s + 1}
}

func (it *objIter) next() bool {
	if it.i < 0 {
		return false
	}
	b := it.b
	i := skipSpace(b, it.i)
	if i < len(b) && b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		it.i = -1
		return false
	}
	ke := skipString(b, i)
	it.key = b[i+1 : ke-1]
	it.keyEsc = bytes.IndexByte(it.key, '\\') >= 0
	i = skipSpace(b, ke)
	if i < len(b) && b[i] == ':' {
		i = skipSpace(b, i+1)
	}
	e := skip(b, i)
	it.val = span{i, e}
	it.i = e
	return true
}

func (it *objIter) keyIs(k string) bool {
	if !it.keyEsc {
		return string(it.key) == k
	}
	var tmp [64]byte
	return string(appendUnescaped(tmp[:0], it.key)) == k
}

// arrIter walks the elements of a validated array.
type arrIter struct {
	b   []byte
	i   int
	val span
}

func newArrIter(b []byte, v span) arrIter {
	if v.s >= v.e || b[v.s] != '[' {
		return arrIter{b: b, i: -1}
	}
	return arrIter{b: b, i: v.s + 1}
}

func (it *arrIter) next() bool {
	if it.i < 0 {
		return false
	}
	b := it.b
	i := skipSpace(b, it.i)
	if i < len(b) && b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] == ']' {
		it.i = -1
		return false
	}
	e := skip(b, i)
	it.val = span{i, e}
	it.i = e
	return true
}

// child returns the value under key in the object v, or, when v is an array, the element
// at the decimal index key (as fastjson's Get does).
func child(b []byte, v span, key string) (span, bool) {
	if v.s >= v.e {
		return span{}, false
	}
	switch b[v.s] {
	case '{':
		it := newObjIter(b, v)
		for it.next() {
			if it.keyIs(key) {
				return it.val, true
			}
		}
	case '[':
		n, err := strconv.Atoi(key)
		if err != nil || n < 0 {
			return span{}, false
		}
		it := newArrIter(b, v)
		for k := 0; it.next(); k++ {
			if k == n {
				return it.val, true
			}
		}
	}
	return span{}, false
}

// appendUnescaped appends the decoded form of the raw string body s (without quotes).
// Invalid surrogates decode to U+FFFD as encoding/json does.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		j := bytes.IndexByte(s[i:], '\\')
		if j < 0 {
			return append(dst, s[i:]...)
		}
		dst = append(dst, s[i:i+j]...)
		i += j + 1
		if i >= len(s) {
			break
		}
		c := s[i]
		i++
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s, i)
			if !ok {
				dst = utf8.AppendRune(dst, utf8.RuneError)
				continue
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok2 := hex4(s, i+2); ok2 && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						dst = utf8.AppendRune(dst, dec)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
	return dst
}

func hex4(s []byte, i int) (rune, bool) {
	if len(s)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// hasSpaceOutsideStrings reports whether the raw value contains insignificant whitespace.
func hasSpaceOutsideStrings(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = skipString(b, i) - 1
		case ' ', '\n', '\r', '\t':
			return true
		}
	}
	return false
}

// appendCompact appends the raw value with insignificant whitespace removed: the value's
// own key order, number spelling and string escapes are kept.
func appendCompact(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			e := skipString(b, i)
			dst = append(dst, b[i:e]...)
			i = e - 1
		case ' ', '\n', '\r', '\t':
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
