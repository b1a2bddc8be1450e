package rules

import (
	"strings"
	"testing"
)

// The cases below follow Falco's documented behaviour:
//   - operators and transformers: https://falco.org/docs/concepts/rules/conditions/
//     ("Comparison operators", "String matching and character encoding", "Transformers",
//     "Field evaluation (for right-hand side of comparisons)");
//   - where the page is silent, libsinsp's sources, which the comments name.

// TestRegexOperator covers `regex`: RE2 in POSIX mode, full match only, invalid UTF-8 read as
// U+FFFD (conditions page, the `regex` row and "String matching and character encoding").
func TestRegexOperator(t *testing.T) {
	tests := []condCase{
		// The page's own example.
		{`ka.name regex '[a-z]*/proc/[0-9]+/cmdline'`, ev("ka.name", "abc/proc/123/cmdline"), true},
		{`ka.name regex '[a-z]*/proc/[0-9]+/cmdline'`, ev("ka.name", "/proc/self/cmdline"), false},
		// "performs a full match only, not a partial match (anchored to both ends)".
		{`ka.name regex proc`, ev("ka.name", "/proc/1"), false},
		{`ka.name regex '.*proc.*'`, ev("ka.name", "/proc/1"), true},
		{`ka.name regex 'a|b'`, ev("ka.name", "a"), true},
		{`ka.name regex 'a|b'`, ev("ka.name", "ab"), false},
		{`ka.name regex "x{2,3}"`, ev("ka.name", "xxx"), true},
		{`ka.name regex "[[:digit:]]+"`, ev("ka.name", "2024"), true},
		{`ka.name regex ''`, ev("ka.name", ""), true},
		// "fd.name regex "/tmp/bad�" and fd.name regex "/tmp/bad." both match /tmp/bad
		// followed by byte 0xFF".
		{`ka.name regex "/tmp/bad."`, ev("ka.name", "/tmp/bad\xff"), true},
		{"ka.name regex \"/tmp/bad\uFFFD\"", ev("ka.name", "/tmp/bad\xff"), true},
		// RE2's POSIX option: '.' stops at a newline, a negated class does not.
		{`ka.name regex 'a.b'`, ev("ka.name", "a\nb"), false},
		{`ka.name regex 'a[^x]b'`, ev("ka.name", "a\nb"), true},
		// A missing field: false, and its negation true, as every operator.
		{`ka.name regex '.*'`, ev(), false},
		{`not ka.name regex '.*'`, ev(), true},
		// Through a transformer and a macro-free list value.
		{`tolower(ka.name) regex '[a-z]+'`, ev("ka.name", "ABC"), true},
		{`ka.name regex one_pattern`, ev("ka.name", "k8s-node-1"), true},
	}
	prelude := `
- list: one_pattern
  items: ['k8s-node-[0-9]+']
`
	checkConditions(t, prelude, tests)
}

// TestRegexLoadErrors: a pattern RE2's POSIX mode refuses is a load error naming the rule or
// the macro and the pattern (libsinsp: "invalid regex pattern: ..." when the filter compiles).
func TestRegexLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want []string
	}{
		// A bare value keeps its backslashes (a quoted one would need them escaped).
		{ruleYAML("", `ka.name regex \d+`), []string{`rule "r"`, `invalid regex pattern "\\d+"`, "invalid escape sequence"}},
		{ruleYAML("", `ka.name regex '(?:a)'`), []string{`rule "r"`, `"(?:a)"`}},
		{ruleYAML("", `ka.name regex 'a('`), []string{`rule "r"`, `"a("`, "missing closing )"}},
		{ruleYAML("- macro: bad_rx\n  condition: ka.name regex '[z-a]'\n", "bad_rx"), []string{`macro "bad_rx"`, `"[z-a]"`}},
		{ruleYAML("", `ka.list regex 'a'`), []string{"list field: only exists, in and intersects apply, not regex"}},
	} {
		_, _, err := loadYAML(t, newMapSource("ka.list"), Options{}, tc.doc)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("error = %v, want one containing %q", err, w)
			}
		}
	}
}

// TestRegexInExceptions: exceptions' comps accept every condition operator, regex included.
func TestRegexInExceptions(t *testing.T) {
	doc := `
- rule: r
  desc: d
  condition: ka.verb = create
  output: o
  priority: INFO
  source: k8s_audit
  exceptions:
    - name: system_users
      fields: [ka.user.name]
      comps: [regex]
      values: [['system:.*']]
`
	e := mustLoad(t, Options{}, doc)
	if got := matched(e, ev("ka.verb", "create", "ka.user.name", "system:kube")); len(got) != 0 {
		t.Errorf("excepted user matched: %v", got)
	}
	if got := matched(e, ev("ka.verb", "create", "ka.user.name", "bob")); len(got) != 1 {
		t.Errorf("other user did not match: %v", got)
	}
}

// TestTransformers covers tolower, toupper, b64, basename and len, nested and on list fields
// (conditions page, "Transformers"; types and per-element application from
// libsinsp/sinsp_filter_transformers/*.cpp).
func TestTransformers(t *testing.T) {
	tests := []condCase{
		// "tolower(proc.name) = bash": the page's example.
		{"tolower(ka.verb) = create", ev("ka.verb", "CrEaTe"), true},
		{"tolower( ka.verb ) = create", ev("ka.verb", "CREATE"), true},
		{"tolower(ka.verb) = CREATE", ev("ka.verb", "CREATE"), false},
		{"toupper(ka.verb) = CREATE", ev("ka.verb", "create"), true},
		// C's tolower in the "C" locale: ASCII letters only.
		{`tolower(ka.verb) = "Éa"`, ev("ka.verb", "ÉA"), true},
		{"tolower(ka.uri.param[x]) startswith abc", ev("ka.uri.param[x]", "ABCD"), true},
		// b64: "Decodes the input field from Base64"; padding optional, anything not base64
		// (an invalid character, a line break, bad length) fails the extraction, so every
		// comparison on it is false (libsinsp/base64.h decodeWithoutPadding).
		{"b64(ka.obj) = hello", ev("ka.obj", "aGVsbG8="), true},
		{"b64(ka.obj) = hello", ev("ka.obj", "aGVsbG8"), true},
		{"b64(ka.obj) contains secret", ev("ka.obj", "bXkgc2VjcmV0IGtleQ=="), true},
		{"b64(ka.obj) = hello", ev("ka.obj", "aGVs bG8="), false},
		{"b64(ka.obj) != hello", ev("ka.obj", "!!!!"), false},
		{"b64(ka.obj) != hello", ev("ka.obj", "aGVs\nbG8="), false},
		{"b64(ka.obj) exists", ev("ka.obj", "a"), false},
		{"b64(ka.obj) = ''", ev("ka.obj", ""), true},
		// basename: "basename(proc.exepath) is "cat" for /usr/bin/cat but "" for /usr/bin/".
		{"basename(ka.path) = cat", ev("ka.path", "/usr/bin/cat"), true},
		{"basename(ka.path) = ''", ev("ka.path", "/usr/bin/"), true},
		{"basename(ka.path) = cat", ev("ka.path", "cat"), true},
		// len: "for LIST fields, the number of elements; for CHARBUF fields, the number of
		// characters" (bytes, as strnlen); the result is a number.
		{"len(ka.verb) = 6", ev("ka.verb", "create"), true},
		{"len(ka.verb) = 06", ev("ka.verb", "create"), true},
		{"len(ka.verb) = 0x6", ev("ka.verb", "create"), true},
		{"len(ka.verb) > 5", ev("ka.verb", "create"), true},
		{"len(ka.verb) < 10", ev("ka.verb", "create"), true},
		{"len(ka.verb) >= 10", ev("ka.verb", "create"), false},
		{"len(ka.verb) in (1, 6)", ev("ka.verb", "create"), true},
		{"len(ka.verb) = 0", ev("ka.verb", ""), true},
		{"len(ka.verb) = 2", ev("ka.verb", "é"), true},
		{"len(ka.list) = 3", ev("ka.list", "a", "ka.list", "b", "ka.list", "c"), true},
		{"len(ka.list) > 2", ev("ka.list", "a"), false},
		// A field that cannot be extracted has no length: false, not 0.
		{"len(ka.verb) = 0", ev(), false},
		{"not len(ka.verb) > 0", ev(), true},
		// Nesting, innermost first.
		{"tolower(basename(ka.path)) = cat", ev("ka.path", "/usr/bin/CAT"), true},
		{"len(basename(ka.path)) = 3", ev("ka.path", "/usr/bin/cat"), true},
		{"len(b64(ka.obj)) = 5", ev("ka.obj", "aGVsbG8="), true},
		{"basename(b64(ka.obj)) = passwd", ev("ka.obj", "L2V0Yy9wYXNzd2Q="), true},
		// String transformers apply to each element of a list field.
		{"tolower(ka.list) in (a, b)", ev("ka.list", "A", "ka.list", "b"), true},
		{"tolower(ka.list) in (a, b)", ev("ka.list", "A", "ka.list", "C"), false},
		{"basename(ka.list) intersects (cat)", ev("ka.list", "/bin/cat", "ka.list", "/x/y"), true},
		{"len(tolower(ka.list)) = 2", ev("ka.list", "A", "ka.list", "B"), true},
		{"tolower(ka.verb) exists", ev("ka.verb", "X"), true},
		// The same transformed field in two checks is extracted once (one slot).
		{"tolower(ka.verb) = a or tolower(ka.verb) = create", ev("ka.verb", "CREATE"), true},
		// Numbers: evt.rawtime is a number as len() is.
		{"evt.rawtime > 1000", ev(), true},
		{"evt.rawtime = 1540475929736141000", ev(), true},
	}
	checkConditions(t, testLists, tests)
}

// TestFieldComparisons covers val() and transformers on the right side ("Field evaluation
// (for right-hand side of comparisons)": `proc.name = val(proc.pname)`,
// `tolower(proc.name) = tolower(proc.pname)`); both sides must have the same type, list-ness
// included, and a missing right side makes the comparison false
// (libsinsp/sinsp_filtercheck.cpp: check_rhs_field_type_consistency, compare_nocache).
func TestFieldComparisons(t *testing.T) {
	tests := []condCase{
		{"ka.user = val(ka.target)", ev("ka.user", "bob", "ka.target", "bob"), true},
		{"ka.user = val(ka.target)", ev("ka.user", "bob", "ka.target", "alice"), false},
		{"ka.user == val( ka.target )", ev("ka.user", "bob", "ka.target", "bob"), true},
		{"ka.user != val(ka.target)", ev("ka.user", "bob", "ka.target", "alice"), true},
		{"ka.user != val(ka.target)", ev("ka.user", "bob"), false},
		{"ka.user = val(ka.target)", ev("ka.user", "bob"), false},
		{"ka.user = val(ka.target)", ev("ka.target", "bob"), false},
		{"ka.user = val(ka.uri.param[u])", ev("ka.user", "bob", "ka.uri.param[u]", "bob"), true},
		{"tolower(ka.user) = tolower(ka.target)", ev("ka.user", "Bob", "ka.target", "BOB"), true},
		{"ka.user = tolower(ka.target)", ev("ka.user", "bob", "ka.target", "BOB"), true},
		{"ka.user = basename(ka.path)", ev("ka.user", "cat", "ka.path", "/bin/cat"), true},
		{"ka.path startswith val(ka.dir)", ev("ka.path", "/etc/passwd", "ka.dir", "/etc/"), true},
		{"ka.path endswith val(ka.user)", ev("ka.path", "/home/bob", "ka.user", "bob"), true},
		{"ka.path contains val(ka.user)", ev("ka.path", "/home/bob/x", "ka.user", "bob"), true},
		{"ka.path icontains val(ka.user)", ev("ka.path", "/home/BOB/x", "ka.user", "bOb"), true},
		{"ka.path glob val(ka.pattern)", ev("ka.path", "/etc/x", "ka.pattern", "/etc/*"), true},
		{"ka.path iglob val(ka.pattern)", ev("ka.path", "/ETC/x", "ka.pattern", "/etc/*"), true},
		{"ka.code > val(ka.limit)", ev("ka.code", "1000", "ka.limit", "300"), true},
		{"ka.code <= val(ka.limit)", ev("ka.code", "1000", "ka.limit", "300"), false},
		{"len(ka.user) > len(ka.target)", ev("ka.user", "alice", "ka.target", "bob"), true},
		{"len(ka.list) = len(ka.list2)", ev("ka.list", "a", "ka.list2", "b"), true},
		{"ka.user in val(ka.target)", ev("ka.user", "bob", "ka.target", "bob"), true},
		{"ka.list in val(ka.list2)", ev("ka.list", "a", "ka.list", "b", "ka.list2", "b", "ka.list2", "a", "ka.list2", "c"), true},
		{"ka.list in val(ka.list2)", ev("ka.list", "a", "ka.list", "d", "ka.list2", "a"), false},
		{"ka.list intersects val(ka.list2)", ev("ka.list", "a", "ka.list", "d", "ka.list2", "d"), true},
		{"ka.list intersects val(ka.list2)", ev("ka.list", "a", "ka.list2", "d"), false},
		{"ka.list intersects tolower(ka.list2)", ev("ka.list", "a", "ka.list2", "A"), true},
	}
	checkConditions(t, "", tests)
}

// TestTransformerAndValErrors: what Falco refuses at load time is refused here with the
// field, the transformer or the operator named.
func TestTransformerAndValErrors(t *testing.T) {
	tests := []struct{ cond, want string }{
		{"len(ka.verb) contains 1", "len(ka.verb) is a number: contains does not apply"},
		{"len(ka.verb) glob '1*'", "is a number: glob does not apply"},
		{"len(ka.verb) regex '1'", "is a number: regex does not apply"},
		{"len(ka.verb) = abc", `"abc" is not a number`},
		{"len(ka.verb) > -1", `"-1" is not a number`},
		{"len(ka.verb) in (1, x)", `"x" is not a number`},
		{"evt.rawtime contains 1", "evt.rawtime is a number"},
		{"tolower(len(ka.verb)) = a", "tolower() does not apply to len(ka.verb), a number"},
		{"len(len(ka.verb)) = 1", "len() does not apply to len(ka.verb), a number"},
		{"basename(evt.rawtime) = a", "basename() does not apply to evt.rawtime, a number"},
		{"tolower(ka.list) = a", "tolower(ka.list) is a list field: only exists, in and intersects apply, not ="},
		{"foo(ka.verb) = a", "unknown field transformer foo(): expected one of tolower, toupper, b64, basename, len"},
		{"val(ka.verb) = a", "val() applies only to the right side"},
		{"tolower(ka.verb = a", "expected ')' closing tolower()"},
		{"tolower() = a", "expected a field or a nested transformer"},
		{"tolower(val(ka.verb)) = a", "expected a field or a nested transformer"},
		{"tolower(ka.unknown) = a", `unknown field "ka.unknown"`},
		{"ka.verb = val(ka.unknown)", `unknown field "ka.unknown"`},
		{"ka.verb = val(ka.list)", "ka.verb is a string while the right-hand side field ka.list is a list of strings"},
		{"ka.list in val(ka.verb)", "ka.list is a list of strings while the right-hand side field ka.verb is a string"},
		{"len(ka.verb) = val(ka.user)", "len(ka.verb) is a number while the right-hand side field ka.user is a string"},
		{"ka.verb regex val(ka.user)", "operator regex does not take a field on its right side"},
		{"ka.verb pmatch val(ka.user)", "operator pmatch does not take a field on its right side"},
		{"ka.verb bcontains val(ka.user)", "bcontains needs a hexadecimal byte string, not the field ka.user"},
		{"ka.verb = val(tolower(ka.user))", "expected a field inside val()"},
		{"ka.verb = val(ka.user", "expected ')' closing val()"},
		{"ka.verb = val()", "expected a field inside val()"},
		{"ka.verb in (val(ka.user))", "expected ',' or ')' in list"},
	}
	checkConditionErrors(t, testLists, tests)
}

// TestRegexMatchesRE2POSIXSyntax pins the regex dialect: what RE2's POSIX option rejects
// (Perl classes, \b, non-capturing groups, \pN) is rejected, and POSIX classes are accepted.
func TestRegexMatchesRE2POSIXSyntax(t *testing.T) {
	for _, p := range []string{`\d`, `\w+`, `\bx`, `(?:a)`, `(?i)a`, `\pL`, `\Aa`, `a{2`} {
		if _, err := compileRegex(p); err == nil && p != `a{2` {
			t.Errorf("%q compiled; RE2's POSIX mode refuses it", p)
		}
	}
	for p, in := range map[string]string{`[[:alpha:]]+`: "abc", `a{2}`: "aa", `(a|b)*c`: "abac", `a*?`: "aaa", `^a$`: "a", `a{2`: "a{2"} {
		re, err := compileRegex(p)
		if err != nil {
			t.Errorf("%q: %v", p, err)
			continue
		}
		if !re.MatchString(in) {
			t.Errorf("%q does not match %q", p, in)
		}
	}
}
