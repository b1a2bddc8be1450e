package aws

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/saker-dev/saker/engine/event"
)

// attribute is one SQS/SNS message attribute, independent of the SDK's two types for it.
type attribute struct {
	Name     string `json:"name"`
	DataType string `json:"type"`
	Value    string `json:"value"`
}

// size is what the attribute counts against the message size limits (name, type and value).
func (a attribute) size() int { return len(a.Name) + len(a.DataType) + len(a.Value) }

// baseAttributes are the attributes falcosidekick's SNS output sets on every message (rule,
// priority, source, tags, hostname), which saker also sets on SQS messages so consumers and
// subscription filter policies can route without parsing the body. Empty values are
// omitted: both services reject an attribute without a value.
func baseAttributes(ev *event.Event) []attribute {
	var out []attribute
	add := func(name, value string) {
		if value = validChars(value); value != "" {
			out = append(out, attribute{Name: name, DataType: "String", Value: value})
		}
	}
	add("priority", ev.Priority.String())
	add("rule", ev.Rule)
	add("source", ev.Source)
	add("tags", strings.Join(ev.Tags, ","))
	add("hostname", ev.Hostname)
	return out
}

// fieldAttributes turns output fields into SNS attributes as falcosidekick does ("proc.aname[2]"
// becomes "proc.aname.2", numbers have the Number type), except that it keeps the fields
// falcosidekick dropped: booleans become strings, lists String.Array (a JSON array, which
// filter policies match element by element). null fields, which have no value to send, are
// left out. Names are made valid for SNS (letters, digits, "-", "_", "." only). Base
// attributes win over a field of the same name. The result is sorted by name.
func fieldAttributes(ev *event.Event, taken map[string]bool) []attribute {
	var out []attribute
	for k, v := range ev.OutputFields {
		name := attributeName(k)
		if name == "" || taken[name] {
			continue
		}
		a := attribute{Name: name, DataType: "String"}
		switch x := v.(type) {
		case nil:
			continue
		case string:
			a.Value = validChars(x)
		case json.Number:
			a.DataType, a.Value = numberAttribute(x.String())
		case float64, float32, int, int64, int32, uint64, uint32:
			a.DataType, a.Value = numberAttribute(fmt.Sprint(x))
		case bool:
			a.Value = fmt.Sprint(x)
		case []any, []string:
			b, err := json.Marshal(x)
			if err != nil {
				continue
			}
			a.DataType, a.Value = "String.Array", validChars(string(b))
		default:
			b, err := json.Marshal(x)
			if err != nil {
				continue
			}
			a.Value = validChars(string(b))
		}
		if a.Value == "" {
			continue
		}
		taken[name] = true
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// numberAttribute keeps a number as SNS's Number type when SNS can hold it (at most 38
// significant digits), and as a string otherwise rather than have the message rejected.
func numberAttribute(s string) (dataType, value string) {
	digits := 0
	for _, r := range s {
		if r == 'e' || r == 'E' {
			break
		}
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	if digits > 38 {
		return "String", s
	}
	return "Number", s
}

// attributeName maps an output field name to a valid SNS/SQS attribute name: brackets as
// falcosidekick mapped them, every other character outside [A-Za-z0-9_.-] replaced by "_",
// no leading, trailing or doubled ".", no reserved "AWS."/"Amazon." prefix, at most 256 bytes.
func attributeName(field string) string {
	s := strings.ReplaceAll(strings.ReplaceAll(field, "]", ""), "[", ".")
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s = b.String()
	for strings.Contains(s, "..") {
		s = strings.ReplaceAll(s, "..", ".")
	}
	s = strings.Trim(s, ".")
	if l := strings.ToLower(s); strings.HasPrefix(l, "aws.") || strings.HasPrefix(l, "amazon.") {
		s = "_" + s
	}
	if len(s) > 256 {
		s = strings.TrimRight(s[:256], ".")
	}
	return s
}

// validChars replaces the characters SQS and SNS refuse in message text and attribute values
// (controls other than tab, CR and LF, U+FFFE, U+FFFF) with U+FFFD, so one odd character does
// not get a whole alert rejected.
func validChars(s string) string {
	ok := utf8.ValidString(s)
	for _, r := range s {
		if !allowedRune(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	return strings.Map(func(r rune) rune {
		if allowedRune(r) {
			return r
		}
		return utf8.RuneError
	}, s)
}

func allowedRune(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// safeJSON makes event JSON acceptable to SQS and SNS without changing what it decodes to:
// the only characters encoding/json leaves raw that the services refuse are U+FFFE and
// U+FFFF, and in JSON they can only be inside strings, where "\ufffe" means the same.
func safeJSON(b []byte) string {
	if !bytes.Contains(b, []byte("\xef\xbf\xbe")) && !bytes.Contains(b, []byte("\xef\xbf\xbf")) {
		return string(b)
	}
	s := strings.ReplaceAll(string(b), "\ufffe", `\ufffe`)
	return strings.ReplaceAll(s, "\uffff", `\uffff`)
}
