package rules

import (
	"fmt"
	"strings"
)

// The condition AST. Conditions are parsed once at load time into these nodes and then compiled
// to closures (compile.go); nothing here runs per event.

type node interface{ pos() int }

type andNode struct {
	at   int
	kids []node
}

type orNode struct {
	at   int
	kids []node
}

type notNode struct {
	at  int
	kid node
}

// macroRef is a bare identifier: a reference to a macro, resolved at compile time.
type macroRef struct {
	at   int
	name string
}

// value is one literal operand. Bare (unquoted) values may name a list, which is spliced in
// place, as Falco's list substitution does; quoted values never are.
type value struct {
	s      string
	quoted bool
}

// checkNode is a field comparison: field op value, field op (list), field op val(field), or
// field exists. The field may be wrapped in transformers: tolower(basename(ka.x)).
type checkNode struct {
	at     int
	field  string
	arg    string
	hasArg bool
	// xforms are the transformers applied to the field's values, innermost first.
	xforms []string
	op     string
	val    value   // scalar operators
	list   []value // list operators (in, intersects, pmatch)
	isList bool
	// rhs, when set, is a field compared with (val(f), or a transformer on the right side)
	// instead of val or list.
	rhs *fieldExpr
}

// fieldExpr is a field reference with its transformers, innermost first.
type fieldExpr struct {
	at     int
	field  string
	arg    string
	hasArg bool
	xforms []string
}

// transformers are Falco's field transformers, in the order its docs list them
// (https://falco.org/docs/concepts/rules/conditions/#transformers). val() is not among them:
// it is only valid on the right side of a comparison.
var transformers = []string{"tolower", "toupper", "b64", "basename", "len"}

func isTransformer(name string) bool {
	for _, t := range transformers {
		if t == name {
			return true
		}
	}
	return false
}

func (n *andNode) pos() int   { return n.at }
func (n *orNode) pos() int    { return n.at }
func (n *notNode) pos() int   { return n.at }
func (n *macroRef) pos() int  { return n.at }
func (n *checkNode) pos() int { return n.at }

// SyntaxError is a condition that does not parse. Offset is the byte offset in the condition.
type SyntaxError struct {
	Offset int
	Msg    string
	Near   string
}

func (e *SyntaxError) Error() string {
	if e.Near == "" {
		return fmt.Sprintf("at offset %d: %s", e.Offset, e.Msg)
	}
	return fmt.Sprintf("at offset %d near %q: %s", e.Offset, e.Near, e.Msg)
}

// maxDepth bounds recursion so a hostile condition cannot exhaust the stack (Falco uses 1000).
const maxDepth = 1000

// Operator tables, in Falco's matching order (longest first where one is a prefix of another).
var (
	unaryOps   = []string{"exists"}
	numOps     = []string{"<=", "<", ">=", ">"}
	strOps     = []string{"==", "=", "!=", "glob", "iglob", "contains", "icontains", "bcontains", "startswith", "bstartswith", "endswith", "regex"}
	listOps    = []string{"intersects", "in", "pmatch"}
	wordStrOps = map[string]bool{"glob": true, "iglob": true, "contains": true, "icontains": true, "bcontains": true, "startswith": true, "bstartswith": true, "endswith": true, "regex": true}
)

// isOperator reports whether op is a comparison operator usable in exceptions' comps.
func isOperator(op string) bool {
	for _, set := range [][]string{unaryOps, numOps, strOps, listOps} {
		for _, o := range set {
			if o == op {
				return true
			}
		}
	}
	return false
}

func isListOp(op string) bool { return op == "in" || op == "intersects" || op == "pmatch" }

type parser struct {
	in    string
	i     int
	depth int
	// bare names fields without a dot (an alert's rule, priority): in rule files an
	// undotted name is a macro, in a routing filter it is one of these fields.
	bareFields map[string]bool
}

// parseCondition parses a Falco condition into an AST.
func parseCondition(s string) (n node, err error) { return parseConditionWith(s, nil) }

// parseConditionWith parses a condition whose undotted names in bare are fields.
func parseConditionWith(s string, bare map[string]bool) (n node, err error) {
	if strings.TrimSpace(s) == "" {
		return nil, &SyntaxError{Msg: "condition is empty"}
	}
	p := &parser{in: s, bareFields: bare}
	defer func() {
		if r := recover(); r != nil {
			se, ok := r.(*SyntaxError)
			if !ok {
				panic(r)
			}
			n, err = nil, se
		}
	}()
	n = p.parseOr()
	p.blank()
	if p.i != len(p.in) {
		p.fail("unexpected token, expecting 'and', 'or' or the end of the condition")
	}
	return n, nil
}

func (p *parser) fail(format string, args ...any) {
	near := p.in[p.i:]
	if len(near) > 24 {
		near = near[:24] + "..."
	}
	panic(&SyntaxError{Offset: p.i, Msg: fmt.Sprintf(format, args...), Near: near})
}

func (p *parser) enter() {
	p.depth++
	if p.depth > maxDepth {
		p.fail("condition nests deeper than %d levels", maxDepth)
	}
}

func (p *parser) leave() { p.depth-- }

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\b' || c == '\r' || c == '\n' }

func (p *parser) blank() bool {
	start := p.i
	for p.i < len(p.in) && isBlank(p.in[p.i]) {
		p.i++
	}
	return p.i > start
}

func (p *parser) lit(s string) bool {
	if strings.HasPrefix(p.in[p.i:], s) {
		p.i += len(s)
		return true
	}
	return false
}

func (p *parser) parseOr() node {
	p.enter()
	defer p.leave()
	p.blank()
	at := p.i
	kids := []node{p.parseAnd()}
	p.blank()
	for p.lit("or") {
		if !p.blank() {
			if !p.lit("(") {
				p.fail("expected a blank or '(' after 'or'")
			}
			kids = append(kids, p.parseEmbedded())
		} else {
			kids = append(kids, p.parseAnd())
		}
		p.blank()
	}
	if len(kids) == 1 {
		return kids[0]
	}
	return &orNode{at: at, kids: kids}
}

func (p *parser) parseAnd() node {
	p.enter()
	defer p.leave()
	p.blank()
	at := p.i
	kids := []node{p.parseNot()}
	p.blank()
	for p.lit("and") {
		if !p.blank() {
			if !p.lit("(") {
				p.fail("expected a blank or '(' after 'and'")
			}
			kids = append(kids, p.parseEmbedded())
		} else {
			kids = append(kids, p.parseNot())
		}
		p.blank()
	}
	if len(kids) == 1 {
		return kids[0]
	}
	return &andNode{at: at, kids: kids}
}

func (p *parser) parseNot() node {
	p.enter()
	defer p.leave()
	p.blank()
	at := p.i
	neg := false
	for {
		if strings.HasPrefix(p.in[p.i:], "not") && p.i+3 < len(p.in) && isBlank(p.in[p.i+3]) {
			p.i += 3
			p.blank()
			neg = !neg
			continue
		}
		break
	}
	var kid node
	if p.lit("not(") {
		neg = !neg
		kid = p.parseEmbedded()
	} else {
		kid = p.parseCheck()
	}
	if neg {
		return &notNode{at: at, kid: kid}
	}
	return kid
}

// parseEmbedded parses the rest of a parenthesised expression after its '('.
func (p *parser) parseEmbedded() node {
	p.enter()
	defer p.leave()
	p.blank()
	n := p.parseOr()
	p.blank()
	if !p.lit(")") {
		p.fail("expected ')'")
	}
	return n
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdent(c byte) bool  { return isLetter(c) || c >= '0' && c <= '9' || c == '_' }

// identLen returns the length of [a-zA-Z]+[a-zA-Z0-9_]* at s, or 0.
func identLen(s string) int {
	if s == "" || !isLetter(s[0]) {
		return 0
	}
	n := 1
	for n < len(s) && isIdent(s[n]) {
		n++
	}
	return n
}

// fieldNameLen returns the length of a dotted field name (ident(.ident)+) at s, or 0.
func fieldNameLen(s string) int {
	n := identLen(s)
	if n == 0 {
		return 0
	}
	dots := 0
	for n < len(s) && s[n] == '.' {
		m := identLen(s[n+1:])
		if m == 0 {
			break
		}
		n += 1 + m
		dots++
	}
	if dots == 0 {
		return 0
	}
	return n
}

func (p *parser) parseCheck() node {
	p.enter()
	defer p.leave()
	p.blank()
	at := p.i
	if p.lit("(") {
		return p.parseEmbedded()
	}
	if f, ok := p.fieldRef(); ok {
		c := &checkNode{at: at, field: f.field, arg: f.arg, hasArg: f.hasArg}
		p.parseOperator(c)
		return c
	}
	if name, ok := p.transformerCall(); ok {
		f := p.transformerRemainder(name)
		c := &checkNode{at: at, field: f.field, arg: f.arg, hasArg: f.hasArg, xforms: f.xforms}
		p.parseOperator(c)
		return c
	}
	if n := identLen(p.in[p.i:]); n > 0 {
		name := p.in[p.i : p.i+n]
		p.i += n
		if p.i < len(p.in) && p.in[p.i] == '(' {
			p.i = at
			if name == "val" {
				p.fail("val() applies only to the right side of a comparison, as in ka.user.name = val(ka.target.name)")
			}
			p.fail("unknown field transformer %s(): expected one of %s", name, strings.Join(transformers, ", "))
		}
		return &macroRef{at: at, name: name}
	}
	p.fail("expected '(', a field check or a macro name")
	return nil
}

// fieldRef lexes a field name with its optional [argument]: a dotted name, or in a routing
// filter one of its undotted fields.
func (p *parser) fieldRef() (fieldExpr, bool) {
	at := p.i
	n := fieldNameLen(p.in[p.i:])
	if n == 0 && p.bareFields != nil {
		if m := identLen(p.in[p.i:]); m > 0 && p.bareFields[p.in[p.i:p.i+m]] {
			n = m
		}
	}
	if n == 0 {
		return fieldExpr{}, false
	}
	f := fieldExpr{at: at, field: p.in[p.i : p.i+n]}
	p.i += n
	if p.lit("[") {
		arg, ok := p.quoted()
		if !ok {
			arg, ok = p.bare(func(c byte) bool { return c != '[' && c != ']' && c != '"' && c != '\'' && !isBlank(c) })
		}
		if !ok {
			p.fail("expected a field argument (a quoted or bare string) after '['")
		}
		if !p.lit("]") {
			p.fail("expected ']' closing the argument of %s", f.field)
		}
		f.arg, f.hasArg = arg, true
	}
	return f, true
}

// transformerCall lexes "name(" for a transformer name, as Falco does (no blank before '(').
func (p *parser) transformerCall() (string, bool) {
	n := identLen(p.in[p.i:])
	if n == 0 || p.i+n >= len(p.in) || p.in[p.i+n] != '(' || !isTransformer(p.in[p.i:p.i+n]) {
		return "", false
	}
	name := p.in[p.i : p.i+n]
	p.i += n + 1
	return name, true
}

// transformerRemainder parses the argument of transformer name after its '(': a field or a
// nested transformer, then ')'.
func (p *parser) transformerRemainder(name string) fieldExpr {
	p.enter()
	defer p.leave()
	p.blank()
	var f fieldExpr
	if inner, ok := p.transformerCall(); ok {
		f = p.transformerRemainder(inner)
	} else if r, ok := p.fieldRef(); ok {
		f = r
	} else {
		p.fail("expected a field or a nested transformer (%s) inside %s()", strings.Join(transformers, ", "), name)
	}
	p.blank()
	if !p.lit(")") {
		p.fail("expected ')' closing %s()", name)
	}
	f.xforms = append(f.xforms, name)
	return f
}

// rhsInto sets c.rhs when a right-side field starts here.
func (p *parser) rhsInto(c *checkNode) bool {
	f, ok := p.rhsField()
	c.rhs = f
	return ok
}

// rhsField parses a field on the right side of a comparison, val(field) or a transformer
// over a field, as Falco's try_parse_transformer_or_val; ok is false when neither starts here.
func (p *parser) rhsField() (*fieldExpr, bool) {
	at := p.i
	if p.lit("val(") {
		p.blank()
		f, ok := p.fieldRef()
		if !ok {
			p.fail("expected a field inside val()")
		}
		p.blank()
		if !p.lit(")") {
			p.fail("expected ')' closing val()")
		}
		f.at = at
		return &f, true
	}
	if name, ok := p.transformerCall(); ok {
		f := p.transformerRemainder(name)
		f.at = at
		return &f, true
	}
	return nil, false
}

func (p *parser) parseOperator(c *checkNode) {
	p.blank()
	for _, op := range unaryOps {
		if p.lit(op) {
			c.op = op
			return
		}
	}
	for _, op := range numOps {
		if p.lit(op) {
			c.op = op
			p.blank()
			if p.rhsInto(c) {
				return
			}
			v, ok := p.number()
			if !ok && p.bareFields[c.field] {
				// An ordered field of a filter (priority) compares with level names.
				if n := identLen(p.in[p.i:]); n > 0 {
					v, ok = p.in[p.i:p.i+n], true
					p.i += n
				}
				if !ok {
					p.fail("expected a number or a level name (priority >= warning) after %s", op)
				}
			}
			if !ok {
				p.fail("expected a number after %s", op)
			}
			c.val = value{s: v}
			return
		}
	}
	for _, op := range strOps {
		if !strings.HasPrefix(p.in[p.i:], op) {
			continue
		}
		if wordStrOps[op] && (p.i+len(op) >= len(p.in) || !isBlank(p.in[p.i+len(op)])) {
			continue
		}
		p.i += len(op)
		c.op = op
		p.blank()
		if p.rhsInto(c) {
			return
		}
		v, ok := p.strValue()
		if !ok {
			p.fail("expected a string value after %s", op)
		}
		c.val = v
		return
	}
	for _, op := range listOps {
		if p.lit(op) {
			c.op, c.isList = op, true
			p.blank()
			if p.lit("(") {
				c.list = p.listRemainder()
				return
			}
			if p.rhsInto(c) {
				c.isList = false
				return
			}
			if n := identLen(p.in[p.i:]); n > 0 {
				c.list = []value{{s: p.in[p.i : p.i+n]}}
				p.i += n
				return
			}
			p.fail("expected a list '(...)' or a list name after %s", op)
		}
	}
	p.fail("expected an operator: one of exists, =, ==, !=, <, <=, >, >=, glob, iglob, contains, icontains, bcontains, startswith, bstartswith, endswith, regex, in, intersects, pmatch")
}

// listRemainder parses "v1, v2, ...)" after the opening parenthesis.
func (p *parser) listRemainder() []value {
	var vals []value
	p.blank()
	if p.lit(")") {
		return vals
	}
	for {
		p.blank()
		v, ok := p.strValue()
		if !ok {
			p.fail("expected a list value")
		}
		vals = append(vals, v)
		p.blank()
		if p.lit(",") {
			continue
		}
		if p.lit(")") {
			return vals
		}
		p.fail("expected ',' or ')' in list")
	}
}

func isBareStr(c byte) bool {
	return c != '(' && c != ')' && c != '"' && c != '\'' && c != '=' && c != ',' && !isBlank(c)
}

func (p *parser) strValue() (value, bool) {
	if s, ok := p.quoted(); ok {
		return value{s: s, quoted: true}, true
	}
	if s, ok := p.bare(isBareStr); ok {
		return value{s: s}, true
	}
	return value{}, false
}

func (p *parser) bare(ok func(byte) bool) (string, bool) {
	start := p.i
	for p.i < len(p.in) && ok(p.in[p.i]) {
		p.i++
	}
	return p.in[start:p.i], p.i > start
}

// number lexes a decimal or hexadecimal number as Falco's parser does.
func (p *parser) number() (string, bool) {
	s := p.in[p.i:]
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		n := 2
		for n < len(s) && (isLetter(s[n]) || s[n] >= '0' && s[n] <= '9') {
			n++
		}
		if n > 2 {
			p.i += n
			return s[:n], true
		}
	}
	n := 0
	if n < len(s) && (s[n] == '+' || s[n] == '-') {
		n++
	}
	digits := n
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	if n == digits {
		return "", false
	}
	if n < len(s) && s[n] == '.' {
		n++
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
	}
	if n+2 < len(s) && (s[n] == 'e' || s[n] == 'E') && (s[n+1] == '+' || s[n+1] == '-') && s[n+2] >= '0' && s[n+2] <= '9' {
		n += 2
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
	}
	p.i += n
	return s[:n], true
}

// quoted lexes a single- or double-quoted string with Falco's escapes.
func (p *parser) quoted() (string, bool) {
	if p.i >= len(p.in) || (p.in[p.i] != '"' && p.in[p.i] != '\'') {
		return "", false
	}
	delim := p.in[p.i]
	start := p.i
	var b strings.Builder
	for i := p.i + 1; i < len(p.in); i++ {
		c := p.in[i]
		if c == delim {
			p.i = i + 1
			return b.String(), true
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(p.in) {
			break
		}
		switch e := p.in[i]; e {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case ' ', '\\':
			b.WriteByte('\\')
		case '/':
			b.WriteByte('/')
		case '"', '\'':
			if e != delim {
				p.i = i - 1
				p.fail("invalid \\%c escape in a %c-quoted string", e, delim)
			}
			b.WriteByte(e)
		default:
			p.i = i - 1
			p.fail("unsupported escape sequence \\%c", e)
		}
	}
	p.i = start
	p.fail("unterminated quoted string")
	return "", false
}
