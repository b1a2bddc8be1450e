package alertfilter

import (
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/event"
)

func alert(prio event.Priority, rule string, fields map[string]any, tags ...string) *event.Event {
	return &event.Event{Rule: rule, Priority: prio, Source: "syscall", Hostname: "node-1", Output: "x opened y",
		Tags: tags, OutputFields: fields}
}

// filterCase is a filter and whether it passes the prod and the dev alert.
type filterCase struct {
	filter    string
	prod, dev bool
}

func checkFilters(t *testing.T, prod, dev *event.Event, cases []filterCase) {
	t.Helper()
	for _, c := range cases {
		f, err := Compile(c.filter)
		if err != nil {
			t.Errorf("%s: %v", c.filter, err)
			continue
		}
		if got := f.Match(prod); got != c.prod {
			t.Errorf("%s on the prod alert: %v, want %v", c.filter, got, c.prod)
		}
		if got := f.Match(dev); got != c.dev {
			t.Errorf("%s on the dev alert: %v, want %v", c.filter, got, c.dev)
		}
	}
}

func TestFilterFields(t *testing.T) {
	prod := alert(event.Error, "Write below etc", map[string]any{"k8s.ns.name": "prod", "proc.pid": float64(42)}, "filesystem", "mitre_persistence")
	dev := alert(event.Notice, "K8s Secret Get", map[string]any{"k8s.ns.name": "dev"})
	cases := []filterCase{
		{"priority >= warning", true, false},
		{"priority < warning", false, true},
		{"priority = Error", true, false},
		{"priority in (notice, critical)", false, true},
		{"priority >= WARNING and priority <= critical", true, false},
		{`rule startswith "K8s "`, false, true},
		{`not rule startswith "K8s "`, true, false},
		{"rule = 'Write below etc'", true, false},
		{"source = syscall and hostname = node-1", true, true},
		{"tags intersects (mitre_persistence, other)", true, false},
		{"tags exists", true, false},
		{"output_fields[k8s.ns.name] in (prod, payments)", true, false},
		{"output_fields[proc.pid] > 40", true, false},
		{"output_fields[k8s.pod.name] exists", false, false},
		{"output contains opened", true, true},
		{`priority >= warning and output_fields[k8s.ns.name] in (prod, payments) and not rule startswith "K8s "`, true, false},
	}
	checkFilters(t, prod, dev, cases)
}

func TestFilterErrorsNameColumnAndExpectation(t *testing.T) {
	cases := map[string]string{
		"priority >>>= nonsense":     "column 11: expected a number or a level name",
		"priority >= urgent":         `"urgent" is not a priority: expected one of emergency`,
		"rule = x and":               "column 13",
		"proc.name = bash":           `unknown field "proc.name": expected one of rule, priority`,
		"critical":                   `column 1: "critical" is not a field: expected a comparison`,
		"output_fields = x":          "output_fields needs the name of a field",
		"rule[x] = y":                "field rule takes no argument",
		"tags = x":                   "list field",
		"":                           "condition is empty",
		"(priority >= warning":       "column",
		"priority >= warning or foo": `column 24: "foo" is not a field`,
	}
	for text, want := range cases {
		_, err := Compile(text)
		if err == nil {
			t.Errorf("%q compiled", text)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %q lacks %q", text, err, want)
		}
	}
}

// TestFilterSharesTheRuleLanguage: routing filters are compiled by the rule engine's parser
// and compiler, so the regex operator, the field transformers and val() work in them too
// (https://falco.org/docs/concepts/rules/conditions/).
func TestFilterSharesTheRuleLanguage(t *testing.T) {
	prod := alert(event.Error, "Write below etc", map[string]any{"k8s.ns.name": "prod-eu", "fd.name": "/etc/Passwd",
		"user.name": "root", "k8s.pod.name": "root"}, "filesystem", "mitre_persistence")
	dev := alert(event.Notice, "K8s Secret Get", map[string]any{"k8s.ns.name": "dev", "fd.name": "/tmp/x", "user.name": "bob"})
	cases := []filterCase{
		{`output_fields[k8s.ns.name] regex 'prod-[a-z]+'`, true, false},
		{`rule regex 'K8s.*'`, false, true},
		{`tolower(rule) contains "write"`, true, false},
		{`toupper(hostname) = NODE-1`, true, true},
		{`tolower(basename(output_fields[fd.name])) = passwd`, true, false},
		{`len(tags) >= 2`, true, false},
		{`len(output_fields[k8s.ns.name]) = 3`, false, true},
		{`tolower(tags) intersects (filesystem)`, true, false},
		{`output_fields[user.name] = val(output_fields[k8s.pod.name])`, true, false},
		{`priority >= warning and output_fields[user.name] != val(output_fields[k8s.pod.name])`, false, false},
	}
	checkFilters(t, prod, dev, cases)
	for text, want := range map[string]string{
		"tolower(priority) = warning": "tolower() does not apply to priority, a number",
		"rule regex '(unclosed'":      `column 1: invalid regex pattern "(unclosed"`,
		"rule = val(nosuch)":          "expected a field inside val()",
		"priority contains warn":      "priority is a number: contains does not apply",
		"len(rule) > high":            `"high" is not a number`,
		"rule = val(output_fields[x]": "column 28: expected ')' closing val()",
	} {
		_, err := Compile(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", text, err, want)
		}
	}
}
