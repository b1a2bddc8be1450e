package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// FieldText renders one output field as text for humans (chat, mail). falcosidekick silently
// dropped non-string fields or printed "<no value>"; saker shows them all: strings as they
// are, numbers with their exact JSON spelling, null as "null", lists and objects as compact
// JSON without HTML escaping.
func FieldText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "null"
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case fmt.Stringer:
		return x.String()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// LabelText renders an output field as a label value (Alertmanager, Loki): like FieldText,
// but lists are joined with commas and null is no value (ok false), so it can be left out.
func LabelText(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case []any:
		parts := make([]string, 0, len(x))
		for _, item := range x {
			if s, ok := LabelText(item); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ","), true
	case []string:
		return strings.Join(x, ","), true
	}
	return FieldText(v), true
}
