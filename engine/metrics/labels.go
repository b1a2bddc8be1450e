package metrics

import (
	"fmt"
	"hash/fnv"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLabelValueLength caps the bytes of a falco_events_total label value. Rule names and
// output fields come from event content: 300 events with 300 KB rule names made /metrics
// 90 MB. A cut value keeps a recognizable prefix and ends with a hash of the whole value,
// so distinct long values stay distinct series.
const MaxLabelValueLength = 256

// truncationMark separates the kept prefix from the hash of the whole value.
const truncationMark = "…"

// capLabelValue cuts v to MaxLabelValueLength bytes: its longest valid UTF-8 prefix that
// fits, then truncationMark and 8 hex digits of the value's FNV-1a hash. Invalid UTF-8
// (which Prometheus refuses in label values) is replaced first.
func capLabelValue(v string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(v))
	v = strings.ToValidUTF8(v, "\uFFFD")
	if len(v) <= MaxLabelValueLength {
		return v
	}
	keep := MaxLabelValueLength - len(truncationMark) - 8
	for keep > 0 && !utf8.RuneStart(v[keep]) {
		keep--
	}
	return v[:keep] + truncationMark + fmt.Sprintf("%08x", h.Sum32())
}

// ExtraLabel is a label of falco_events_total beyond the fixed ones, read from an event's
// output_fields.
type ExtraLabel struct {
	Name  string // the label name: the field name with . replaced by _
	Field string // the output_fields key
	// AnyType formats non-string values with %v (customfields, templatedfields); otherwise
	// (prometheus.extralabels) a value that is not a string is the empty label, as in
	// falcosidekick.
	AnyType bool
}

func (x ExtraLabel) value(fields map[string]any) string {
	v, ok := fields[x.Field]
	if !ok || v == nil {
		return ""
	}
	if s, isString := v.(string); isString {
		return s
	}
	if !x.AnyType {
		return ""
	}
	return fmt.Sprint(v)
}

// validLabel is Prometheus' label name syntax, as falcosidekick checks it.
var validLabel = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// EventExtraLabels lists the extra labels of falco_events_total as falcosidekick adds them:
// every customfields key, every templatedfields key, then each output_fields key of
// prometheus.extralabels (comma-separated), with "." replaced by "_". A name that is not a
// valid Prometheus label, is reserved (__*) or repeats another label is left out and
// reported in the warnings (falcosidekick logs the first and fails on the last).
func EventExtraLabels(customFields, templatedFields map[string]string, extraLabels string) ([]ExtraLabel, []string) {
	var out []ExtraLabel
	var warnings []string
	taken := map[string]string{}
	for _, n := range baseEventLabels {
		taken[n] = "a built-in label"
	}
	add := func(field, from string, anyType bool) {
		name := strings.ReplaceAll(field, ".", "_")
		switch {
		case !validLabel.MatchString(name) || strings.HasPrefix(name, "__"):
			warnings = append(warnings, fmt.Sprintf("%s %q is not a valid Prometheus label name: not added to falco_events_total", from, field))
		case taken[name] != "":
			warnings = append(warnings, fmt.Sprintf("%s %q gives label %q, already %s of falco_events_total: not added again", from, field, name, taken[name]))
		default:
			taken[name] = "from " + from + " " + strconv.Quote(field)
			out = append(out, ExtraLabel{Name: name, Field: field, AnyType: anyType})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(customFields)) {
		add(k, "customfields key", true)
	}
	for _, k := range slices.Sorted(maps.Keys(templatedFields)) {
		add(k, "templatedfields key", true)
	}
	for _, k := range strings.Split(strings.ReplaceAll(extraLabels, " ", ""), ",") {
		if k != "" {
			add(k, "prometheus.extralabels field", false)
		}
	}
	return out, warnings
}
