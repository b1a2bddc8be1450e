package rules

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// cond is a compiled condition. It reads fields through the per-goroutine evalState, which
// caches each field once per event, so a field shared by many rules (ka.verb, the stage) is
// extracted once.
type cond func(s *evalState) bool

// evalState is the per-goroutine scratch space: the current event and a field cache indexed by
// the engine's field table. Reusing it across events keeps evaluation allocation-free.
type evalState struct {
	ev    any
	epoch uint32
	gen   []uint32
	sval  []string
	ok    []bool
	lval  [][]string
	defs  []Field
	// Macro results memoised per event: a macro like kevt is shared by most rules.
	mgen []uint32
	mval []bool
}

func newEvalState(defs []Field, nmacros int) *evalState {
	n := len(defs)
	return &evalState{defs: defs, gen: make([]uint32, n), sval: make([]string, n), ok: make([]bool, n), lval: make([][]string, n),
		mgen: make([]uint32, nmacros), mval: make([]bool, nmacros)}
}

// reset starts a new event: every cached field becomes stale.
func (s *evalState) reset(ev any) {
	s.ev = ev
	s.epoch++
	if s.epoch == 0 { // wrapped: clear generations so no stale entry looks fresh
		clear(s.gen)
		clear(s.mgen)
		s.epoch = 1
	}
}

func (s *evalState) load(i int) {
	vals, ok := s.defs[i].Extract(s.ev, s.lval[i][:0])
	if len(vals) == 0 {
		ok = false
	}
	s.lval[i] = vals
	s.ok[i] = ok
	s.sval[i] = ""
	if ok {
		s.sval[i] = vals[0]
	}
	s.gen[i] = s.epoch
}

// scalar returns the value of non-list field i.
func (s *evalState) scalar(i int) (string, bool) {
	if s.gen[i] != s.epoch {
		s.load(i)
	}
	return s.sval[i], s.ok[i]
}

// list returns the values of list field i (non-empty when ok).
func (s *evalState) list(i int) ([]string, bool) {
	if s.gen[i] != s.epoch {
		s.load(i)
	}
	return s.lval[i], s.ok[i]
}

// compiler turns parsed conditions into closures, resolving macros, lists and fields.
type compiler struct {
	src      Source
	col      *collector
	builtins map[string]func(arg string, hasArg bool) (Field, error)
	lists    map[string][]string // expanded list items
	fieldIdx map[string]int
	fields   []Field
	macros   map[string]cond // compiled macro bodies
	asts     map[string]node
	busy     map[string]bool
	usedList map[string]bool
	usedMac  map[string]bool
	nmacros  int // memo slots allocated
}

// newCompiler returns a compiler of src's conditions with the lists, macros and builtin
// fields of col and builtins (both may be empty: a lone condition).
func newCompiler(src Source, col *collector, builtins map[string]func(arg string, hasArg bool) (Field, error)) *compiler {
	return &compiler{src: src, col: col, builtins: builtins, lists: map[string][]string{},
		fieldIdx: map[string]int{}, macros: map[string]cond{}, asts: map[string]node{}, busy: map[string]bool{},
		usedList: map[string]bool{}, usedMac: map[string]bool{}}
}

// compileErr is a compile failure at an offset in a condition, with the macro it came from
// when it was not the rule's own condition.
type compileErr struct {
	off   int
	macro *macroDef
	err   error
	// unknownField is set for unresolvable fields, so skip-if-unknown-filter can skip the rule.
	unknownField bool
}

func (e *compileErr) Error() string { return e.err.Error() }
func (e *compileErr) Unwrap() error { return e.err }

func (c *compiler) fail(n node, format string, args ...any) error {
	return &compileErr{off: n.pos(), err: fmt.Errorf(format, args...)}
}

// expandLists resolves list items that name other lists (visible ones, as Falco: defined
// before the referencing list's latest definition).
func (c *compiler) expandLists() {
	c.lists = make(map[string][]string, len(c.col.lists))
	var expand func(d *listDef, depth int) []string
	expand = func(d *listDef, depth int) []string {
		if v, ok := c.lists[d.name]; ok {
			return v
		}
		out := make([]string, 0, len(d.items))
		for _, it := range d.items {
			if ref := c.col.listIdx[it]; ref != nil && ref != d && ref.index < d.visibility && depth < 64 {
				c.usedList[ref.name] = true
				out = append(out, expand(ref, depth+1)...)
				continue
			}
			out = append(out, it)
		}
		c.lists[d.name] = out
		return out
	}
	for _, d := range c.col.lists {
		expand(d, 0)
	}
}

// field resolves and interns a field reference, returning its index in the engine's table.
func (c *compiler) field(name, arg string, hasArg bool) (int, error) {
	key := name
	if hasArg {
		key += "[" + arg + "]"
	}
	if i, ok := c.fieldIdx[key]; ok {
		return i, nil
	}
	var f Field
	var err error
	if b, ok := c.builtins[name]; ok {
		f, err = b(arg, hasArg)
	} else {
		f, err = c.src.Field(name, arg, hasArg)
	}
	if err != nil {
		return 0, err
	}
	if f.Extract == nil {
		return 0, fmt.Errorf("field %s: source returned no extractor", key)
	}
	c.fields = append(c.fields, f)
	c.fieldIdx[key] = len(c.fields) - 1
	return len(c.fields) - 1, nil
}

// macroAST parses a macro's condition once.
func (c *compiler) macroAST(m *macroDef) (node, error) {
	if n, ok := c.asts[m.name]; ok {
		return n, nil
	}
	n, err := parseCondition(m.cond)
	if err != nil {
		return nil, err
	}
	c.asts[m.name] = n
	return n, nil
}

// compile compiles n; vis bounds which macros are visible (math.MaxInt for rules).
func (c *compiler) compile(n node, vis int) (cond, error) {
	switch n := n.(type) {
	case *andNode:
		kids, err := c.compileAll(n.kids, vis)
		if err != nil {
			return nil, err
		}
		if len(kids) == 2 {
			a, b := kids[0], kids[1]
			return func(s *evalState) bool { return a(s) && b(s) }, nil
		}
		return func(s *evalState) bool {
			for _, k := range kids {
				if !k(s) {
					return false
				}
			}
			return true
		}, nil
	case *orNode:
		kids, err := c.compileAll(n.kids, vis)
		if err != nil {
			return nil, err
		}
		if len(kids) == 2 {
			a, b := kids[0], kids[1]
			return func(s *evalState) bool { return a(s) || b(s) }, nil
		}
		return func(s *evalState) bool {
			for _, k := range kids {
				if k(s) {
					return true
				}
			}
			return false
		}, nil
	case *notNode:
		k, err := c.compile(n.kid, vis)
		if err != nil {
			return nil, err
		}
		return func(s *evalState) bool { return !k(s) }, nil
	case *macroRef:
		return c.compileMacro(n, vis)
	case *checkNode:
		return c.compileCheck(n)
	}
	return nil, fmt.Errorf("internal error: unknown node %T", n)
}

func (c *compiler) compileAll(ns []node, vis int) ([]cond, error) {
	out := make([]cond, len(ns))
	for i, k := range ns {
		var err error
		if out[i], err = c.compile(k, vis); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (c *compiler) compileMacro(ref *macroRef, vis int) (cond, error) {
	m := c.col.macroIdx[ref.name]
	if m == nil || m.index >= vis {
		return nil, c.fail(ref, "undefined macro %q used in condition", ref.name)
	}
	c.usedMac[m.name] = true
	if f, ok := c.macros[m.name]; ok {
		return f, nil
	}
	if c.busy[m.name] {
		return nil, c.fail(ref, "macro %q references itself (directly or through other macros)", m.name)
	}
	ast, err := c.macroAST(m)
	if err != nil {
		return nil, &compileErr{macro: m, off: offsetOf(err), err: err}
	}
	c.busy[m.name] = true
	f, err := c.compile(ast, m.visibility)
	delete(c.busy, m.name)
	if err != nil {
		var ce *compileErr
		if errors.As(err, &ce) && ce.macro == nil {
			ce.macro = m
		}
		return nil, err
	}
	// Memoise the macro's result per event: cheap, and it pays off for macros shared by
	// many rules (kevt, kactivity).
	slot := c.nmacros
	c.nmacros++
	memo := func(s *evalState) bool {
		if s.mgen[slot] == s.epoch {
			return s.mval[slot]
		}
		v := f(s)
		s.mgen[slot], s.mval[slot] = s.epoch, v
		return v
	}
	c.macros[m.name] = memo
	return memo, nil
}

func offsetOf(err error) int {
	var se *SyntaxError
	if errors.As(err, &se) {
		return se.Offset
	}
	return 0
}

// splice expands bare values naming a list into the list's items (Falco's list substitution).
func (c *compiler) splice(vals []value) []string {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if !v.quoted {
			if items, ok := c.lists[v.s]; ok {
				c.usedList[v.s] = true
				out = append(out, items...)
				continue
			}
		}
		out = append(out, v.s)
	}
	return out
}

func (c *compiler) compileCheck(n *checkNode) (cond, error) {
	fi, t, err := c.fieldExpr(n.at, n.field, n.arg, n.hasArg, n.xforms)
	if err != nil {
		return nil, err
	}
	if err := c.checkOperand(n, t); err != nil {
		return nil, err
	}
	if n.rhs != nil {
		return c.compileFieldCompare(n, fi, t)
	}
	isListField := t.list
	conv := c.fields[fi].Literal
	if conv == nil && t.numeric && !t.list {
		conv = uintLiteral
	}
	if conv != nil && n.op != "exists" {
		if err := c.convertLiterals(n, conv); err != nil {
			return nil, err
		}
	}
	switch {
	case n.op == "exists":
		return func(s *evalState) bool {
			if s.gen[fi] != s.epoch {
				s.load(fi)
			}
			return s.ok[fi]
		}, nil
	case n.isList:
		items := c.splice(n.list)
		if isListField {
			set := newStrSet(items)
			switch n.op {
			case "in":
				return func(s *evalState) bool {
					vals, ok := s.list(fi)
					if !ok {
						return false
					}
					for _, v := range vals {
						if !set.has(v) {
							return false
						}
					}
					return true
				}, nil
			case "intersects":
				return func(s *evalState) bool {
					vals, ok := s.list(fi)
					if !ok {
						return false
					}
					for _, v := range vals {
						if set.has(v) {
							return true
						}
					}
					return false
				}, nil
			}
		}
		if n.op == "pmatch" {
			prefixes := make([]string, len(items))
			for i, p := range items {
				prefixes[i] = strings.TrimRight(p, "/")
			}
			return func(s *evalState) bool {
				v, ok := s.scalar(fi)
				return ok && pathPrefixMatch(prefixes, v)
			}, nil
		}
		set := newStrSet(items)
		return func(s *evalState) bool {
			v, ok := s.scalar(fi)
			return ok && set.has(v)
		}, nil
	}
	lit := n.val.s
	if !n.val.quoted {
		// A bare value naming a list is substituted by Falco too; only a one-item list
		// yields a valid scalar comparison.
		if items, ok := c.lists[lit]; ok {
			if len(items) != 1 {
				return nil, c.fail(n, "list %q (%d items) used as the value of %s; use in (...)", lit, len(items), n.op)
			}
			c.usedList[lit] = true
			lit = items[0]
		}
	}
	return c.compileScalarOp(n, fi, lit)
}

func (n *checkNode) fieldText() string { return fieldExprText(n.field, n.arg, n.hasArg, n.xforms) }

func (c *compiler) compileScalarOp(n *checkNode, fi int, lit string) (cond, error) {
	switch n.op {
	case "=", "==":
		return func(s *evalState) bool { v, ok := s.scalar(fi); return ok && v == lit }, nil
	case "!=":
		return func(s *evalState) bool { v, ok := s.scalar(fi); return ok && v != lit }, nil
	case "contains":
		return func(s *evalState) bool { v, ok := s.scalar(fi); return ok && strings.Contains(v, lit) }, nil
	case "icontains":
		return func(s *evalState) bool { v, ok := s.scalar(fi); return ok && containsFold(v, lit) }, nil
	case "regex":
		re, err := compileRegex(lit)
		if err != nil {
			return nil, c.fail(n, "invalid regex pattern %q: %v", lit, err)
		}
		return func(s *evalState) bool { v, ok := s.scalar(fi); return ok && re.MatchString(v) }, nil
	case "startswith":
		return func(s *evalState) bool { v, ok := s.scalar(fi); return ok && strings.HasPrefix(v, lit) }, nil
	case "endswith":
		return func(s *evalState) bool { v, ok := s.scalar(fi); return ok && strings.HasSuffix(v, lit) }, nil
	case "bcontains", "bstartswith":
		b, err := hex.DecodeString(lit)
		if err != nil {
			return nil, c.fail(n, "%s needs a hexadecimal byte string, got %q", n.op, lit)
		}
		needle := string(b)
		if n.op == "bcontains" {
			return func(s *evalState) bool { v, ok := s.scalar(fi); return ok && strings.Contains(v, needle) }, nil
		}
		return func(s *evalState) bool { v, ok := s.scalar(fi); return ok && strings.HasPrefix(v, needle) }, nil
	case "glob":
		return func(s *evalState) bool { v, ok := s.scalar(fi); return ok && globMatch(lit, v, false) }, nil
	case "iglob":
		return func(s *evalState) bool { v, ok := s.scalar(fi); return ok && globMatch(lit, v, true) }, nil
	case "<", "<=", ">", ">=":
		num, err := parseNumLiteral(lit)
		if err != nil {
			return nil, c.fail(n, "%s needs a number, got %q", n.op, lit)
		}
		op := n.op
		return func(s *evalState) bool {
			v, ok := s.scalar(fi)
			if !ok {
				return false
			}
			var r int
			if x, isNum := parseNum(v); isNum {
				r = cmpFloat(x, num)
			} else {
				r = strings.Compare(v, lit)
			}
			return ordered(op, r)
		}, nil
	}
	return nil, c.fail(n, "unsupported operator %q", n.op)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func parseNumLiteral(s string) (float64, error) {
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		u, err := strconv.ParseUint(s[2:], 16, 64)
		return float64(u), err
	}
	return strconv.ParseFloat(s, 64)
}

// parseNum parses a field value as a decimal number without allocating on failure (strconv
// allocates its error), so non-numeric values fall back to string comparison cheaply.
func parseNum(s string) (float64, bool) {
	if s == "" || len(s) > 64 {
		return 0, false
	}
	digits := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = true
		case c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E':
		default:
			return 0, false
		}
	}
	if !digits {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// strSet is a set of strings: a slice for the small sets rules mostly use, a map beyond.
type strSet struct {
	small []string
	m     map[string]struct{}
}

func newStrSet(items []string) *strSet {
	if len(items) <= 8 {
		return &strSet{small: items}
	}
	m := make(map[string]struct{}, len(items))
	for _, it := range items {
		m[it] = struct{}{}
	}
	return &strSet{m: m}
}

func (s *strSet) has(v string) bool {
	if s.m != nil {
		_, ok := s.m[v]
		return ok
	}
	for _, it := range s.small {
		if it == v {
			return true
		}
	}
	return false
}

// asciiLower lower-cases ASCII letters as C's tolower in the "C" locale.
func asciiLower(s string) string { return flipCase(s, 'A', 'Z') }

// flipCase switches the case of every ASCII letter of s in [lo, hi] (one case's range); s
// itself, without allocating, when there is none.
func flipCase(s string, lo, hi byte) string {
	i := 0
	for i < len(s) && (s[i] < lo || s[i] > hi) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for j := i; j < len(b); j++ {
		if c := b[j]; c >= lo && c <= hi {
			b[j] = c ^ 0x20 // upper and lower case differ in this bit
		}
	}
	return string(b)
}

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// containsFold reports whether needle occurs in h ignoring ASCII case, as Falco's icontains
// (strcasestr) does, without allocating; the needle may be a literal or a value (val()).
func containsFold(h, needle string) bool {
	n := len(needle)
	if n == 0 {
		return true
	}
outer:
	for i := 0; i+n <= len(h); i++ {
		for j := 0; j < n; j++ {
			if lowerByte(h[i+j]) != lowerByte(needle[j]) {
				continue outer
			}
		}
		return true
	}
	return false
}

// pathPrefixMatch reports whether v is one of the paths or below one of them (pmatch).
func pathPrefixMatch(prefixes []string, v string) bool {
	for _, p := range prefixes {
		if p == "" { // "/" or "": everything absolute is below the root
			if strings.HasPrefix(v, "/") {
				return true
			}
			continue
		}
		if strings.HasPrefix(v, p) && (len(v) == len(p) || v[len(p)] == '/') {
			return true
		}
	}
	return false
}

// globMatch matches s against a shell pattern as fnmatch(3) without flags: '*' matches any
// run (including '/'), '?' one byte, '[...]' a class ('!' or '^' negates), '\' escapes.
func globMatch(pattern, s string, fold bool) bool {
	eq := func(a, b byte) bool {
		if fold {
			return lowerByte(a) == lowerByte(b)
		}
		return a == b
	}
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starP, starS = px, sx
				px++
				continue
			case '?':
				px++
				sx++
				continue
			case '[':
				if ok, next, valid := matchClass(pattern, px, s[sx], fold); valid {
					if ok {
						px, sx = next, sx+1
						continue
					}
				} else if eq(c, s[sx]) {
					px++
					sx++
					continue
				}
			case '\\':
				if px+1 < len(pattern) && eq(pattern[px+1], s[sx]) {
					px += 2
					sx++
					continue
				}
			default:
				if eq(c, s[sx]) {
					px++
					sx++
					continue
				}
			}
		}
		if starP >= 0 {
			starS++
			px, sx = starP+1, starS
			continue
		}
		return false
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

// matchClass matches c against the bracket expression at pattern[px]; valid is false when the
// bracket is not closed (then '[' is literal).
func matchClass(pattern string, px int, c byte, fold bool) (ok bool, next int, valid bool) {
	i := px + 1
	neg := false
	if i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^') {
		neg = true
		i++
	}
	if fold {
		c = lowerByte(c)
	}
	first := true
	for i < len(pattern) {
		if pattern[i] == ']' && !first {
			return ok != neg, i + 1, true
		}
		first = false
		lo := pattern[i]
		hi := lo
		if i+2 < len(pattern) && pattern[i+1] == '-' && pattern[i+2] != ']' {
			hi = pattern[i+2]
			i += 3
		} else {
			i++
		}
		if fold {
			lo, hi = lowerByte(lo), lowerByte(hi)
		}
		if lo <= c && c <= hi {
			ok = true
		}
	}
	return false, 0, false
}

// convertLiterals rewrites the values of check n through its field's Literal conversion.
func (c *compiler) convertLiterals(n *checkNode, conv func(string) (string, error)) error {
	if n.isList {
		items := c.splice(n.list)
		vals := make([]value, len(items))
		for i, it := range items {
			v, err := conv(it)
			if err != nil {
				return c.fail(n, "%s: %v", n.fieldText(), err)
			}
			vals[i] = value{s: v, quoted: true}
		}
		n.list = vals
		return nil
	}
	v, err := conv(n.val.s)
	if err != nil {
		return c.fail(n, "%s: %v", n.fieldText(), err)
	}
	n.val = value{s: v, quoted: true}
	return nil
}
