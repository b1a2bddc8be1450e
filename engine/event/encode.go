package event

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the event's Falco JSON to dst, exactly what encoding/json produces
// for it with HTML escaping off (keys of output_fields sorted), but without reflection for
// the usual values (strings, json.Number, integers, booleans, null, string lists): every
// event is encoded once and this showed in ingest and replay profiles. Other values go
// through encoding/json. scratch is reused for the sorted keys (may be nil).
func (e *Event) AppendJSON(dst []byte, scratch *[]string) []byte {
	dst = append(dst, '{')
	if e.UUID != "" {
		dst = append(dst, `"uuid":`...)
		dst = appendJSONString(dst, e.UUID)
		dst = append(dst, ',')
	}
	dst = append(dst, `"output":`...)
	dst = appendJSONString(dst, e.Output)
	dst = append(dst, `,"priority":`...)
	dst = appendJSONString(dst, e.Priority.String())
	dst = append(dst, `,"rule":`...)
	dst = appendJSONString(dst, e.Rule)
	dst = append(dst, `,"time":"`...)
	dst = e.Time.AppendFormat(dst, TimeLayout)
	dst = append(dst, `","output_fields":{`...)
	var keys []string
	if scratch != nil {
		keys = (*scratch)[:0]
	}
	for k := range e.OutputFields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if scratch != nil {
		*scratch = keys
	}
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSONValue(dst, e.OutputFields[k])
	}
	dst = append(dst, `},"source":`...)
	dst = appendJSONString(dst, e.Source)
	if len(e.Tags) > 0 {
		dst = append(dst, `,"tags":`...)
		dst = appendStrings(dst, e.Tags)
	}
	if e.Hostname != "" {
		dst = append(dst, `,"hostname":`...)
		dst = appendJSONString(dst, e.Hostname)
	}
	return append(dst, '}')
}

func appendJSONValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return appendJSONString(dst, v)
	case json.Number:
		if isNumber(v) {
			return append(dst, v...)
		}
	case []string:
		if v == nil {
			return append(dst, "null"...)
		}
		return appendStrings(dst, v)
	case int64:
		return strconv.AppendInt(dst, v, 10)
	case int:
		return strconv.AppendInt(dst, int64(v), 10)
	case bool:
		return strconv.AppendBool(dst, v)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only values JSON cannot hold (NaN, channels) get here; keep the document valid.
		return appendJSONString(dst, "<unencodable: "+err.Error()+">")
	}
	return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

func appendStrings(dst []byte, l []string) []byte {
	dst = append(dst, '[')
	for i, s := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, s)
	}
	return append(dst, ']')
}

// isNumber reports whether n is a JSON number literal (json.Number from a decoder always is).
func isNumber(n json.Number) bool {
	s := string(n)
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does with HTML escaping off: short escapes for
// \b \f \n \r \t, \u00XX for other control characters, U+FFFD for invalid UTF-8, and
// \u2028 \u2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// TimeLayout is how Falco writes event times: RFC 3339 with all nine fractional digits.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"
