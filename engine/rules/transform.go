package rules

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
)

// Field transformers, the regex operator and field-to-field comparisons (val()), with the
// semantics of Falco's libsinsp (sinsp_filter_transformers/*, sinsp_filtercheck.cpp,
// filter_compare.cpp) and the rules of https://falco.org/docs/concepts/rules/conditions/.

// ftype is what the compiler knows of a field expression's values: Falco's list flag, and
// whether they are numbers (PT_UINT64: len(), evt.rawtime, a filter's priority) rather than
// strings (PT_CHARBUF, every k8saudit field).
type ftype struct{ list, numeric bool }

func (t ftype) String() string {
	s := "string"
	if t.numeric {
		s = "number"
	}
	if t.list {
		s = "list of " + s + "s"
	}
	return s
}

// xformStep is one compiled transformer: it rewrites vals in place (the slice is the field
// slot's own buffer) and fails when a value cannot be transformed (b64 of non-base64).
type xformStep func(vals []string) ([]string, bool)

// transformType applies Falco's transform_type: which input types a transformer accepts and
// what it yields. String transformers apply to each element of a list field.
func transformType(name string, in ftype) (ftype, bool) {
	switch name {
	case "tolower", "toupper", "b64", "basename":
		return in, !in.numeric
	case "len":
		if in.list {
			return ftype{numeric: true}, true
		}
		return ftype{numeric: true}, !in.numeric
	}
	return in, false
}

func transformStep(name string, in ftype) xformStep {
	each := func(f func(string) (string, bool)) xformStep {
		return func(vals []string) ([]string, bool) {
			for i, v := range vals {
				t, ok := f(v)
				if !ok {
					return vals, false
				}
				vals[i] = t
			}
			return vals, true
		}
	}
	switch name {
	case "tolower":
		return each(func(v string) (string, bool) { return asciiLower(v), true })
	case "toupper":
		return each(func(v string) (string, bool) { return asciiUpper(v), true })
	case "b64":
		return each(b64Decode)
	case "basename":
		return each(func(v string) (string, bool) { return v[strings.LastIndexByte(v, '/')+1:], true })
	case "len":
		if in.list {
			return func(vals []string) ([]string, bool) {
				n := len(vals)
				return append(vals[:0], strconv.Itoa(n)), true
			}
		}
		// A string's length is strnlen's: C strings end at their first NUL.
		return each(func(v string) (string, bool) { return strconv.Itoa(len(cString(v))), true })
	}
	return nil
}

// cString is v as libsinsp's string comparisons see it: up to its first NUL byte.
func cString(v string) string {
	if i := strings.IndexByte(v, 0); i >= 0 {
		return v[:i]
	}
	return v
}

// b64Decode decodes as libsinsp's Base64::decodeWithoutPadding: the standard alphabet, up to
// two '=' of padding (optional), unused trailing bits zero, nothing else (no line breaks,
// which encoding/base64 would skip). Falco keeps the result as a C string, so it ends at
// its first NUL.
func b64Decode(v string) (string, bool) {
	v = strings.TrimRight(v, "\x00") // libsinsp drops the terminators before decoding
	if v == "" {
		return "", true
	}
	in := strings.TrimSuffix(strings.TrimSuffix(v, "="), "=")
	if in == "" || strings.ContainsAny(in, "\r\n") {
		return "", false
	}
	out, err := base64.RawStdEncoding.Strict().DecodeString(in)
	if err != nil {
		return "", false
	}
	return cString(string(out)), true
}

// asciiUpper upper-cases ASCII letters as C's toupper in the "C" locale.
func asciiUpper(s string) string { return flipCase(s, 'a', 'z') }

// fieldExprText renders a field expression as written: tolower(basename(ka.x[a])).
func fieldExprText(name, arg string, hasArg bool, xforms []string) string {
	s := name
	if hasArg {
		s += "[" + arg + "]"
	}
	for _, x := range xforms {
		s = x + "(" + s + ")"
	}
	return s
}

// fieldExpr resolves a field with its transformers to a slot of the field table. A
// transformed field is a field of its own (interned by its text), so it too is extracted
// and transformed once per event however many checks use it.
func (c *compiler) fieldExpr(at int, name, arg string, hasArg bool, xforms []string) (int, ftype, error) {
	bi, err := c.field(name, arg, hasArg)
	if err != nil {
		return 0, ftype{}, &compileErr{off: at, err: err, unknownField: true}
	}
	t := ftype{list: c.fields[bi].List, numeric: c.fields[bi].Numeric}
	if len(xforms) == 0 {
		return bi, t, nil
	}
	steps := make([]xformStep, len(xforms))
	for k, x := range xforms {
		out, ok := transformType(x, t)
		if !ok {
			return 0, ftype{}, &compileErr{off: at, err: fmt.Errorf("%s() does not apply to %s, a %s",
				x, fieldExprText(name, arg, hasArg, xforms[:k]), t)}
		}
		steps[k] = transformStep(x, t)
		t = out
	}
	key := fieldExprText(name, arg, hasArg, xforms)
	if i, ok := c.fieldIdx[key]; ok {
		return i, t, nil
	}
	base := c.fields[bi].Extract
	f := Field{List: t.list, Numeric: t.numeric, Extract: func(ev any, buf []string) ([]string, bool) {
		vals, ok := base(ev, buf)
		if !ok || len(vals) == 0 {
			return vals, false
		}
		for _, step := range steps {
			if vals, ok = step(vals); !ok {
				return vals[:0], false
			}
		}
		return vals, true
	}}
	c.fields = append(c.fields, f)
	c.fieldIdx[key] = len(c.fields) - 1
	return len(c.fields) - 1, t, nil
}

// numericOps are the operators Falco allows on a number (flt_is_comparable_numeric).
var numericOps = map[string]bool{"=": true, "==": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true,
	"in": true, "intersects": true, "exists": true}

// checkOperand refuses an operator that Falco refuses on the field's type.
func (c *compiler) checkOperand(n *checkNode, t ftype) error {
	switch {
	case t.list:
		if n.op != "exists" && n.op != "in" && n.op != "intersects" {
			return c.fail(n, "%s is a list field: only exists, in and intersects apply, not %s", n.fieldText(), n.op)
		}
	case t.numeric:
		if !numericOps[n.op] {
			return c.fail(n, "%s is a number: %s does not apply (only =, !=, <, <=, >, >=, in, intersects, exists)", n.fieldText(), n.op)
		}
	}
	return nil
}

// uintLiteral is a number written in a condition compared with a number field, in the
// canonical decimal form the field extracts (Falco parses it as a uint64).
func uintLiteral(s string) (string, error) {
	var u uint64
	var err error
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		u, err = strconv.ParseUint(s[2:], 16, 64)
	} else {
		u, err = strconv.ParseUint(strings.TrimPrefix(s, "+"), 10, 64)
	}
	if err != nil {
		return "", fmt.Errorf("%q is not a number (an unsigned integer is expected)", s)
	}
	return strconv.FormatUint(u, 10), nil
}

// compileRegex compiles a regex operand as Falco does: RE2 with its POSIX option (POSIX egrep
// syntax: no \d, no (?:...), no lazy repetition; ^ and $ also match at line breaks; negated
// classes match a newline), matched against the whole value (ANCHOR_BOTH). Go's regexp is
// RE2's design; the pattern is parsed with exactly those flags, then anchored. Invalid UTF-8
// in a value reads as U+FFFD, as libsinsp's sanitising does.
func compileRegex(pattern string) (*regexp.Regexp, error) {
	tree, err := syntax.Parse(pattern, syntax.ClassNL)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(`^(?:` + tree.String() + `)$`)
	if err != nil {
		return nil, fmt.Errorf("internal error compiling %q: %w", pattern, err)
	}
	return re, nil
}

// compileFieldCompare compiles field op val(field): the right side is extracted per event
// and stands for the literal (or, for in/intersects, the set of literals). A missing value on
// either side makes the comparison false, as in Falco.
func (c *compiler) compileFieldCompare(n *checkNode, li int, lt ftype) (cond, error) {
	r := n.rhs
	ri, rt, err := c.fieldExpr(r.at, r.field, r.arg, r.hasArg, r.xforms)
	if err != nil {
		return nil, err
	}
	rtext := fieldExprText(r.field, r.arg, r.hasArg, r.xforms)
	switch n.op {
	case "regex", "pmatch":
		return nil, c.fail(n, "operator %s does not take a field on its right side (%s)", n.op, rtext)
	case "bcontains", "bstartswith":
		return nil, c.fail(n, "%s needs a hexadecimal byte string, not the field %s", n.op, rtext)
	}
	if lt != rt {
		return nil, c.fail(n, "%s is a %s while the right-hand side field %s is a %s: they cannot be compared", n.fieldText(), lt, rtext, rt)
	}
	if lt.list {
		all := n.op == "in"
		return func(s *evalState) bool {
			lv, ok := s.list(li)
			if !ok {
				return false
			}
			rv, ok := s.list(ri)
			if !ok {
				return false
			}
			for _, v := range lv {
				found := false
				for _, w := range rv {
					if v == w {
						found = true
						break
					}
				}
				if found != all {
					return found
				}
			}
			return all
		}, nil
	}
	var cmp func(v, w string) bool
	switch n.op {
	case "=", "==", "in", "intersects":
		cmp = func(v, w string) bool { return v == w }
	case "!=":
		cmp = func(v, w string) bool { return v != w }
	case "contains":
		cmp = strings.Contains
	case "icontains":
		cmp = containsFold
	case "startswith":
		cmp = strings.HasPrefix
	case "endswith":
		cmp = strings.HasSuffix
	case "glob":
		cmp = func(v, w string) bool { return globMatch(w, v, false) }
	case "iglob":
		cmp = func(v, w string) bool { return globMatch(w, v, true) }
	case "<", "<=", ">", ">=":
		op := n.op
		cmp = func(v, w string) bool { return ordered(op, compareValues(v, w)) }
	default:
		return nil, c.fail(n, "unsupported operator %q", n.op)
	}
	return func(s *evalState) bool {
		v, ok := s.scalar(li)
		if !ok {
			return false
		}
		w, ok := s.scalar(ri)
		return ok && cmp(v, w)
	}, nil
}

// compareValues orders two extracted values: as numbers when both are, else as strings.
func compareValues(v, w string) int {
	if x, ok := parseNum(v); ok {
		if y, ok := parseNum(w); ok {
			return cmpFloat(x, y)
		}
	}
	return strings.Compare(v, w)
}

func ordered(op string, r int) bool {
	switch op {
	case "<":
		return r < 0
	case "<=":
		return r <= 0
	case ">":
		return r > 0
	}
	return r >= 0
}
