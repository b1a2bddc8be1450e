package rules

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// ruleYAML wraps a condition into a one-rule file (after the given prelude of lists/macros).
func ruleYAML(prelude, cond string) string {
	return prelude + fmt.Sprintf(`
- rule: r
  desc: d
  condition: %s
  output: o
  priority: INFO
  source: k8s_audit
`, strconv.Quote(cond))
}

func loadYAML(t *testing.T, src Source, opts Options, docs ...string) (*Engine, []Warning, error) {
	t.Helper()
	var files []File
	for i, d := range docs {
		files = append(files, File{Name: fmt.Sprintf("f%d.yaml", i+1), Data: []byte(d)})
	}
	if opts.Hostname == "" {
		opts.Hostname = "host"
	}
	return Load(src, files, opts)
}

func mustLoad(t *testing.T, opts Options, docs ...string) *Engine {
	t.Helper()
	e, _, err := loadYAML(t, newMapSource("ka.list", "ka.list2"), opts, docs...)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return e
}

func ev(kv ...string) *mapEvent {
	e := &mapEvent{ts: 1540475929736141000, fields: map[string][]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		e.fields[kv[i]] = append(e.fields[kv[i]], kv[i+1])
	}
	return e
}

// matched returns the names of the rules matching e, in order.
func matched(e *Engine, x any) []string {
	var out []string
	e.NewEvaluator().Match(x, func(r *Rule) { out = append(out, r.Name) })
	return out
}

const testLists = `
- list: ab
  items: [a, b]
- list: cd
  items: [c, "d"]
- list: nested
  items: [ab, e]
- list: empty
  items: []
- list: spaced
  items: ["x y"]
`

// condCase is a condition, an event, and whether the condition matches it.
type condCase struct {
	cond string
	ev   *mapEvent
	want bool
}

// checkConditions loads each condition as a one-rule file after prelude and checks it
// against its event.
func checkConditions(t *testing.T, prelude string, tests []condCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.cond, func(t *testing.T) {
			e := mustLoad(t, Options{}, ruleYAML(prelude, tc.cond))
			if got := len(matched(e, tc.ev)) == 1; got != tc.want {
				t.Errorf("%s on %q = %v, want %v", tc.cond, tc.ev.fields, got, tc.want)
			}
		})
	}
}

// checkConditionErrors checks that each condition fails to load with an error containing want.
func checkConditionErrors(t *testing.T, prelude string, tests []struct{ cond, want string }) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.cond, func(t *testing.T) {
			_, _, err := loadYAML(t, newMapSource("ka.list", "ka.list2"), Options{}, ruleYAML(prelude, tc.cond))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestConditionSemantics(t *testing.T) {
	tests := []condCase{
		// equality and missing fields
		{"ka.verb = create", ev("ka.verb", "create"), true},
		{"ka.verb == create", ev("ka.verb", "create"), true},
		{"ka.verb=create", ev("ka.verb", "get"), false},
		{"ka.verb = create", ev(), false},
		{"ka.verb != create", ev("ka.verb", "get"), true},
		{"ka.verb != create", ev(), false},
		{"not ka.verb = create", ev(), true},
		{"not ka.verb != create", ev(), true},
		{"ka.verb exists", ev("ka.verb", ""), true},
		{"ka.verb exists", ev(), false},
		{"ka.reason = ''", ev("ka.reason", ""), true},
		// numeric comparisons compare as numbers where the value parses
		{"ka.code < 300", ev("ka.code", "200"), true},
		{"ka.code < 300", ev("ka.code", "300"), false},
		{"ka.code <= 300", ev("ka.code", "300"), true},
		{"ka.code > 300", ev("ka.code", "1000"), true},
		{"ka.code >= 1000", ev("ka.code", "1000"), true},
		{"ka.code > 0x10", ev("ka.code", "17"), true},
		{"ka.code > -1.5", ev("ka.code", "-1"), true},
		{"ka.code < 300", ev("ka.code", "abc"), false},
		{"ka.code < 300", ev(), false},
		// string operators
		{"ka.obj contains password", ev("ka.obj", `{"password":"x"}`), true},
		{"ka.obj contains password", ev("ka.obj", `{"PASSWORD":"x"}`), false},
		{"ka.obj icontains PassWord", ev("ka.obj", `{"PASSWORD":"x"}`), true},
		{"ka.obj icontains PassWord", ev("ka.obj", `{"pass":"x"}`), false},
		{"ka.name startswith \"system:\"", ev("ka.name", "system:kube"), true},
		{"ka.name startswith system:", ev("ka.name", "kube"), false},
		{"ka.code startswith 2", ev("ka.code", "201"), true},
		{"ka.name endswith .sock", ev("ka.name", "/var/run/docker.sock"), true},
		{"ka.name endswith .sock", ev("ka.name", "/var/run/docker"), false},
		{"ka.path glob /etc/*", ev("ka.path", "/etc/a/b"), true},
		{"ka.path glob '/etc/?'", ev("ka.path", "/etc/ab"), false},
		{"ka.path glob '/etc/[a-c]x'", ev("ka.path", "/etc/bx"), true},
		{"ka.path glob '/etc/[!a-c]x'", ev("ka.path", "/etc/bx"), false},
		{"ka.path iglob /ETC/*", ev("ka.path", "/etc/x"), true},
		{"ka.path glob /ETC/*", ev("ka.path", "/etc/x"), false},
		{"ka.path pmatch (/etc, /var/run)", ev("ka.path", "/etc/passwd"), true},
		{"ka.path pmatch (/etc, /var/run)", ev("ka.path", "/var/run"), true},
		{"ka.path pmatch (/etc, /var/run)", ev("ka.path", "/etcx"), false},
		{"ka.path pmatch (/)", ev("ka.path", "/anything"), true},
		{"ka.s bcontains 776f726c64", ev("ka.s", "hello world"), true},
		{"ka.s bstartswith 68656c", ev("ka.s", "hello"), true},
		{"ka.s bstartswith 776f", ev("ka.s", "hello"), false},
		// in / intersects on a scalar
		{"ka.verb in (create, update)", ev("ka.verb", "update"), true},
		{"ka.verb in (create,update)", ev("ka.verb", "get"), false},
		{"ka.verb in ('create', \"get\")", ev("ka.verb", "get"), true},
		{"ka.verb intersects (create)", ev("ka.verb", "create"), true},
		{"ka.verb in ()", ev("ka.verb", "create"), false},
		{"not ka.verb in ()", ev("ka.verb", "create"), true},
		{"not ka.verb in (create)", ev(), true},
		// list splicing, nested lists, quoting
		{"ka.verb in (ab)", ev("ka.verb", "b"), true},
		{"ka.verb in (ab, cd)", ev("ka.verb", "d"), true},
		{"ka.verb in (nested)", ev("ka.verb", "a"), true},
		{"ka.verb in (nested)", ev("ka.verb", "e"), true},
		{"ka.verb in (nested)", ev("ka.verb", "nested"), false},
		{"ka.verb in (\"ab\")", ev("ka.verb", "ab"), true},
		{"ka.verb in (\"ab\")", ev("ka.verb", "a"), false},
		{"ka.verb in (empty, z)", ev("ka.verb", "z"), true},
		{"ka.verb in (spaced)", ev("ka.verb", "x y"), true},
		{"ka.verb in ab", ev("ka.verb", "a"), true},
		{"ka.verb = unlisted", ev("ka.verb", "unlisted"), true},
		// list fields: in = all, intersects = any, empty = missing
		{"ka.list in (a, b)", ev("ka.list", "a", "ka.list", "b"), true},
		{"ka.list in (a, b)", ev("ka.list", "a", "ka.list", "c"), false},
		{"ka.list in (a, b)", ev(), false},
		{"not ka.list in (a, b)", ev(), true},
		{"ka.list intersects (a, z)", ev("ka.list", "c", "ka.list", "a"), true},
		{"ka.list intersects (z)", ev("ka.list", "c", "ka.list", "a"), false},
		{"ka.list intersects (ab)", ev("ka.list", "b"), true},
		{"ka.list exists", ev("ka.list", "x"), true},
		{"ka.list exists", ev(), false},
		// field arguments
		{"ka.uri.param[command] exists", ev("ka.uri.param[command]", "ls"), true},
		{"ka.uri.param[command] exists", ev("ka.uri.param[other]", "ls"), false},
		{"jevt.value[/stage] in (ResponseComplete)", ev("jevt.value[/stage]", "ResponseComplete"), true},
		{`jevt.value["/a b"] = x`, ev("jevt.value[/a b]", "x"), true},
		{"jevt.value[/annotations/authorization.k8s.io~1decision] = allow", ev("jevt.value[/annotations/authorization.k8s.io~1decision]", "allow"), true},
		// quoting and escapes
		{`ka.verb = "a b"`, ev("ka.verb", "a b"), true},
		{`ka.verb = 'a "b"'`, ev("ka.verb", `a "b"`), true},
		{`ka.verb = "a\"b"`, ev("ka.verb", `a"b`), true},
		{`ka.verb = "a\tb"`, ev("ka.verb", "a\tb"), true},
		// boolean structure and precedence: not > and > or
		{"ka.a = 1 or ka.b = 1 and ka.c = 1", ev("ka.a", "1"), true},
		{"ka.a = 1 or ka.b = 1 and ka.c = 1", ev("ka.b", "1"), false},
		{"(ka.a = 1 or ka.b = 1) and ka.c = 1", ev("ka.a", "1"), false},
		{"not ka.a = 1 and ka.b = 1", ev("ka.b", "1"), true},
		{"not ka.a = 1 and ka.b = 1", ev(), false},
		{"not (ka.a = 1 and ka.b = 1)", ev(), true},
		{"not not ka.a = 1", ev("ka.a", "1"), true},
		{"not(ka.a = 1)", ev(), true},
		{"ka.a = 1 and(ka.b = 1)", ev("ka.a", "1", "ka.b", "1"), true},
		{"ka.a = 1 or(ka.b = 1)", ev("ka.b", "1"), true},
		{"((ka.a = 1))", ev("ka.a", "1"), true},
		{"ka.a = 1\n  and ka.b = 1", ev("ka.a", "1", "ka.b", "1"), true},
		// macros
		{"m_create", ev("ka.verb", "create"), true},
		{"m_create and not m_nested", ev("ka.verb", "create"), true},
		{"m_nested", ev("ka.verb", "create", "ka.user", "bob"), true},
		{"not m_nested", ev("ka.verb", "create"), true},
	}
	prelude := testLists + `
- macro: m_create
  condition: ka.verb = create
- macro: m_nested
  condition: m_create and ka.user in (bob)
`
	checkConditions(t, prelude, tests)
}

func TestConditionErrors(t *testing.T) {
	tests := []struct{ cond, want string }{
		{"ka.verb =", "expected a string value"},
		{"ka.verb", "expected an operator"},
		{"ka.verb = a and", "expected a blank or '(' after 'and'"},
		{"ka.verb = a and ", "expected '(', a field check or a macro name"},
		{"ka.verb = a or", "expected a blank or '(' after 'or'"},
		{"(ka.verb = a", "expected ')'"},
		{"ka.verb = a)", "unexpected token"},
		{"ka.verb in (a,", "expected a list value"},
		{"ka.verb in (a b)", "expected ',' or ')'"},
		{"ka.verb foo x", "expected an operator"},
		{`ka.verb = "open`, "unterminated quoted string"},
		{`ka.verb = "a\qb"`, `unsupported escape sequence \q`},
		{`ka.verb = 'a\"b'`, `invalid \" escape`},
		{"ka.code < abc", "expected a number"},
		{"foo(ka.verb) = a", "unknown field transformer foo()"},
		{"ka.uri.param[a = b", "expected ']'"},
		{"nosuchmacro", `undefined macro "nosuchmacro"`},
		{"t.unknown.field = 1", `unknown field "t.unknown.field"`},
		{"ka.uri.param = x", "requires an argument"},
		{"ka.list = a", "list field: only exists, in and intersects"},
		{"ka.list contains a", "list field"},
		{"ka.list pmatch (/a)", "list field"},
		{"ka.s bcontains zz", "hexadecimal"},
		{"ka.verb = ab", `list "ab" (2 items) used as the value`},
		{"ka.a = 1 andka.b = 1", "expected a blank or '('"},
		{"loop1", "references itself"},
	}
	prelude := testLists + `
- macro: loop1
  condition: ka.a = 1
- macro: loop2
  condition: loop1
- macro: loop1
  condition: or loop2
  append: true
`
	checkConditionErrors(t, prelude, tests)
}

func TestParseDepthLimit(t *testing.T) {
	cond := strings.Repeat("(", 5000) + "ka.a = 1" + strings.Repeat(")", 5000)
	if _, err := parseCondition(cond); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Fatalf("error = %v, want a depth error", err)
	}
}

func TestMacroVisibility(t *testing.T) {
	// As in Falco, a macro sees only macros defined before it; rules see every macro.
	_, _, err := loadYAML(t, newMapSource(), Options{}, `
- macro: uses_later
  condition: later
- macro: later
  condition: ka.a = 1
`+ruleYAML("", "uses_later"))
	if err == nil || !strings.Contains(err.Error(), `undefined macro "later"`) || !strings.Contains(err.Error(), `macro "uses_later"`) {
		t.Fatalf("error = %v", err)
	}
	e := mustLoad(t, Options{}, ruleYAML("", "later_macro")+`
- macro: later_macro
  condition: ka.a = 1
`)
	if got := matched(e, ev("ka.a", "1")); len(got) != 1 {
		t.Fatalf("a rule must see a macro defined after it: %v", got)
	}
}

func TestOutputRendering(t *testing.T) {
	doc := `
- rule: out
  desc: d
  condition: ka.verb exists
  output: >
    user=%ka.user.name target=%ka.target.name/%ka.target.resource
    cmd=%ka.uri.param[command] list=%ka.list empty=%ka.reason t=%evt.time.s (%ka.verb)
  priority: WARNING
  source: k8s_audit
  tags: [k8s, b, a, k8s]
`
	e := mustLoad(t, Options{Location: time.UTC, Hostname: "node-1"}, doc)
	var got []*event.Event
	e.Evaluate(ev("ka.verb", "create", "ka.user.name", "bob", "ka.target.resource", "pods", "ka.list", "x", "ka.list", "y", "ka.reason", ""),
		func(a *event.Event) { got = append(got, a) })
	if len(got) != 1 {
		t.Fatalf("got %d alerts", len(got))
	}
	a := got[0]
	wantOut := "13:58:49.736141000: Warning user=bob target=<NA>/pods cmd=<NA> list=(x,y) empty= t=13:58:49 (create)"
	if a.Output != wantOut {
		t.Errorf("output\n got  %q\n want %q", a.Output, wantOut)
	}
	wantFields := map[string]any{
		"evt.time": int64(1540475929736141000), "evt.time.s": "13:58:49", "ka.user.name": "bob", "ka.target.name": nil,
		"ka.target.resource": "pods", "ka.uri.param[command]": nil, "ka.list": []string{"x", "y"}, "ka.reason": "", "ka.verb": "create",
	}
	if fmt.Sprint(a.OutputFields) != fmt.Sprint(wantFields) {
		t.Errorf("output_fields\n got  %v\n want %v", a.OutputFields, wantFields)
	}
	if a.Rule != "out" || a.Priority != event.Warning || a.Source != "k8s_audit" || a.Hostname != "node-1" ||
		!slices.Equal(a.Tags, []string{"a", "b", "k8s"}) || !a.Time.Equal(time.Unix(0, 1540475929736141000)) {
		t.Errorf("alert = %+v", a)
	}
	if string(a.JSON()) == "" {
		t.Error("alert does not encode")
	}
}

func TestOutputErrors(t *testing.T) {
	for _, tc := range []struct{ output, want string }{
		{"trailing %", "cannot end with a %"},
		{"bad %nosuch.field here", "unknown field"},
		{"bad %ka.uri.param[x here", "missing ']'"},
		{"bad %evt.time[x]", "does not take an argument"},
	} {
		doc := fmt.Sprintf(`
- rule: r
  desc: d
  condition: ka.a exists
  output: %q
  priority: INFO
  source: k8s_audit
`, tc.output)
		_, _, err := loadYAML(t, newMapSource(), Options{}, doc)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "f1.yaml:5") || !strings.Contains(err.Error(), `rule "r"`) {
			t.Errorf("%q: error = %v, want f1.yaml:5, the rule and %q", tc.output, err, tc.want)
		}
	}
}

// namedSource adds FieldNamer to mapSource, for Falco's longest-known-name token split.
type namedSource struct{ *mapSource }

func (namedSource) FieldNames() []string { return []string{"ka.user.name", "ka.user", "ka.uri.param"} }

func TestOutputTokenSplitWithFieldNames(t *testing.T) {
	doc := `
- rule: r
  desc: d
  condition: ka.user.name exists
  output: "%ka.user.namex %ka.user.name.y %ka.uri.param[a]b"
  priority: INFO
  source: k8s_audit
`
	e, _, err := loadYAML(t, namedSource{newMapSource()}, Options{Location: time.UTC}, doc)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	e.Evaluate(ev("ka.user.name", "bob", "ka.uri.param[a]", "v"), func(a *event.Event) { out = a.Output })
	if want := "13:58:49.736141000: Informational bobx bob.y vb"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestMatchFirstAndAll(t *testing.T) {
	doc := `
- rule: one
  desc: d
  condition: ka.a = 1
  output: one
  priority: INFO
  source: k8s_audit
- rule: two
  desc: d
  condition: ka.a exists
  output: two
  priority: INFO
  source: k8s_audit
`
	first := mustLoad(t, Options{}, doc)
	if got := matched(first, ev("ka.a", "1")); !slices.Equal(got, []string{"one"}) {
		t.Errorf("first: %v", got)
	}
	if got := matched(first, ev("ka.a", "2")); !slices.Equal(got, []string{"two"}) {
		t.Errorf("first, second rule: %v", got)
	}
	all := mustLoad(t, Options{Matching: MatchAll}, doc)
	if got := matched(all, ev("ka.a", "1")); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("all: %v", got)
	}
	for _, s := range []string{"first", "ALL", ""} {
		if _, err := ParseMatching(s); err != nil {
			t.Errorf("ParseMatching(%q): %v", s, err)
		}
	}
	if _, err := ParseMatching("some"); err == nil {
		t.Error("ParseMatching(some) must fail")
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	e := mustLoad(t, Options{Matching: MatchAll}, ruleYAML(testLists+`
- macro: m
  condition: ka.verb in (ab, cd) and ka.list intersects (a)
`, "m and not ka.name icontains SYSTEM and ka.code > 300 and ka.path glob '/etc/*' and ka.path regex '/etc/[a-z]+'"+
		" and tolower(basename(ka.path)) = x and len(ka.name) < 10 and ka.user = val(ka.name) and ka.list intersects val(ka.list2)"))
	v := e.NewEvaluator()
	x := ev("ka.verb", "a", "ka.list", "a", "ka.list", "b", "ka.name", "bob", "ka.code", "404", "ka.path", "/etc/x",
		"ka.user", "bob", "ka.list2", "b")
	if v.Match(x, nil) != 1 {
		t.Fatal("rule should match")
	}
	if n := testing.AllocsPerRun(100, func() { v.Match(x, nil) }); n != 0 {
		t.Errorf("Match allocates %v times per event", n)
	}
	miss := ev("ka.verb", "zz")
	fn := func(*event.Event) { t.Error("no alert expected") }
	if n := testing.AllocsPerRun(100, func() { v.Evaluate(miss, fn) }); n != 0 {
		t.Errorf("Evaluate of a non-matching event allocates %v times", n)
	}
	if !raceEnabled {
		if n := testing.AllocsPerRun(100, func() { e.Evaluate(miss, fn) }); n != 0 {
			t.Errorf("Engine.Evaluate of a non-matching event allocates %v times", n)
		}
	}
}

func TestEngineEvaluateConcurrent(t *testing.T) {
	e := mustLoad(t, Options{}, ruleYAML("", "ka.a = 1"))
	done := make(chan int)
	for g := 0; g < 4; g++ {
		go func() {
			n := 0
			for i := 0; i < 200; i++ {
				n += e.Evaluate(ev("ka.a", strconv.Itoa(i%2)), nil)
			}
			done <- n
		}()
	}
	for g := 0; g < 4; g++ {
		if n := <-done; n != 100 {
			t.Errorf("goroutine matched %d events, want 100", n)
		}
	}
}
