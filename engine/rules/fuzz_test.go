package rules

import (
	"testing"

	"github.com/saker-dev/saker/engine/event"
)

// FuzzParseCondition checks that no condition makes the parser, the compiler or evaluation
// panic, and that a parsed condition compiles or fails with an error.
func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{
		"ka.verb = create", "not ka.a in (x, 'y', \"z\") and (m or ka.b exists)", "ka.list intersects (ab)",
		"ka.code >= 0x1F or ka.code < -1.5e+3", "ka.uri.param[x] startswith \"a\\\"b\"", "not(ka.a glob '/[!a-c]*')",
		"ka.a regex '[a-z]+(x|y)*'", "ka.a regex \\d", "tolower(basename(ka.a)) = x and len(ka.list) > 0",
		"b64(ka.b64) contains x", "toupper(ka.list) intersects (A)", "ka.verb = val(ka.a) or tolower(ka.a) != toupper(ka.verb)",
		"ka.list in val(ka.list2)", "len(ka.a) < len(ka.verb)", "ka.a in tolower(ka.verb)",
	} {
		f.Add(s)
	}
	src := newMapSource("ka.list", "ka.list2")
	x := ev("ka.verb", "create", "ka.a", "x", "ka.list", "a", "ka.list2", "a", "ka.code", "12", "ka.uri.param[x]", "a\"b",
		"ka.b64", "eA==")
	f.Fuzz(func(t *testing.T, cond string) {
		n, err := parseCondition(cond)
		if err != nil {
			return
		}
		if n == nil {
			t.Fatal("nil AST without error")
		}
		doc := testLists + "- macro: m\n  condition: ka.a = x\n" + ruleYAML("", cond)
		e, _, err := Load(src, []File{{Name: "fuzz.yaml", Data: []byte(doc)}}, Options{Hostname: "h"})
		if err != nil {
			return
		}
		e.Evaluate(x, nil)
	})
}

// FuzzLoadRules checks that no rules file makes the loader panic, and that whatever loads can
// be evaluated and rendered.
func FuzzLoadRules(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(testLists + ruleYAML("", "ka.verb in (ab) and not ka.list intersects (cd)")))
	f.Add([]byte(`
- rule: r
  desc: d
  condition: ka.verb = create
  output: "%ka.user %ka.list %evt.time %ka.uri.param[x]"
  priority: INFO
  source: k8s_audit
  exceptions:
    - name: e
      fields: [ka.user, ka.ns]
      comps: [=, in]
      values: [[a, [b, c]]]
- rule: r
  exceptions:
    - name: e
      values: [[d, [e]]]
  append: true
- rule: r
  output: more
  override:
    output: append
`))
	src := newMapSource("ka.list")
	x := ev("ka.verb", "create", "ka.user", "alice", "ka.list", "a", "ka.uri.param[x]", "1")
	f.Fuzz(func(t *testing.T, data []byte) {
		e, _, err := Load(src, []File{{Name: "fuzz.yaml", Data: data}}, Options{Hostname: "h", Matching: MatchAll})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		e.Evaluate(x, func(a *event.Event) {
			if len(a.JSON()) == 0 {
				t.Fatal("alert does not encode")
			}
		})
	})
}
