package audit

import (
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/saker-dev/saker/engine/event"
)

// appendAlertJSON appends the alert's Falco JSON, byte for byte what (*event.Event).JSON
// produces, without reflection: replay prints one per event of a large log and the
// reflective encoder was a third of its cost. ok is false for a value it does not know
// (then the caller uses JSON()). scratch is reused for the sorted keys. The equality is checked by TestAlertJSONMatchesEvent.
func appendAlertJSON(dst []byte, e *event.Event, scratch *[]string) (out []byte, ok bool) {
	start := len(dst)
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
	dst = e.Time.AppendFormat(dst, event.TimeLayout)
	dst = append(dst, `","output_fields":{`...)
	keys := (*scratch)[:0]
	for k := range e.OutputFields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	*scratch = keys
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		switch v := e.OutputFields[k].(type) {
		case nil:
			dst = append(dst, "null"...)
		case string:
			dst = appendJSONString(dst, v)
		case []string:
			if v == nil {
				dst = append(dst, "null"...)
				break
			}
			dst = append(dst, '[')
			for j, s := range v {
				if j > 0 {
					dst = append(dst, ',')
				}
				dst = appendJSONString(dst, s)
			}
			dst = append(dst, ']')
		case int64:
			dst = strconv.AppendInt(dst, v, 10)
		case int:
			dst = strconv.AppendInt(dst, int64(v), 10)
		case bool:
			dst = strconv.AppendBool(dst, v)
		default:
			return dst[:start], false
		}
	}
	dst = append(dst, `},"source":`...)
	dst = appendJSONString(dst, e.Source)
	if len(e.Tags) > 0 {
		dst = append(dst, `,"tags":[`...)
		for j, s := range e.Tags {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, s)
		}
		dst = append(dst, ']')
	}
	if e.Hostname != "" {
		dst = append(dst, `,"hostname":`...)
		dst = appendJSONString(dst, e.Hostname)
	}
	return append(dst, '}'), true
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does with HTML escaping off: short escapes
// for \b \f \n \r \t, \u00XX for other control characters, U+FFFD for invalid UTF-8 and
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
