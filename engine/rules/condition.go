package rules

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
)

// Condition is one condition in the rule language compiled on its own, over any Source,
// without macros or lists: saker's per-output routing filters use it over alerts. It is safe
// for concurrent use.
type Condition struct {
	text string
	f    cond
	pool sync.Pool // *evalState
}

// ConditionError is a condition that does not parse or compile. Column is 1-based.
type ConditionError struct {
	Column int
	Msg    string
}

func (e *ConditionError) Error() string { return fmt.Sprintf("column %d: %s", e.Column, e.Msg) }

// CompileCondition parses and compiles text against src's fields; bareFields are src's
// fields named without a dot (which a rule file would read as macros). The error is a
// *ConditionError giving the column and what was expected.
func CompileCondition(src Source, bareFields []string, text string) (*Condition, error) {
	bare := make(map[string]bool, len(bareFields))
	for _, f := range bareFields {
		bare[f] = true
	}
	ast, err := parseConditionWith(text, bare)
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			msg := se.Msg
			if se.Near != "" {
				msg = fmt.Sprintf("%s (near %q)", se.Msg, se.Near)
			}
			return nil, &ConditionError{Column: se.Offset + 1, Msg: msg}
		}
		return nil, err
	}
	c := newCompiler(src, newCollector(), map[string]func(string, bool) (Field, error){})
	f, err := c.compile(ast, math.MaxInt)
	if err != nil {
		var ce *compileErr
		if errors.As(err, &ce) {
			msg := ce.err.Error()
			if ce.macro == nil {
				if ref, ok := macroAt(ast, ce.off); ok {
					msg = fmt.Sprintf("%q is not a field: expected a comparison such as `priority >= warning` (fields: %s)", ref, fieldList(src))
				}
			}
			return nil, &ConditionError{Column: ce.off + 1, Msg: msg}
		}
		return nil, err
	}
	fields, nmacros := c.fields, c.nmacros
	cd := &Condition{text: text, f: f}
	cd.pool.New = func() any { return newEvalState(fields, nmacros) }
	return cd, nil
}

// macroAt returns the name of the bare identifier (a macro reference, in a rule file) at off.
func macroAt(n node, off int) (string, bool) {
	switch n := n.(type) {
	case *macroRef:
		return n.name, n.at == off
	case *andNode:
		for _, k := range n.kids {
			if name, ok := macroAt(k, off); ok {
				return name, true
			}
		}
	case *orNode:
		for _, k := range n.kids {
			if name, ok := macroAt(k, off); ok {
				return name, true
			}
		}
	case *notNode:
		return macroAt(n.kid, off)
	}
	return "", false
}

func fieldList(src Source) string {
	if fn, ok := src.(FieldNamer); ok {
		return strings.Join(fn.FieldNames(), ", ")
	}
	return src.Name() + " fields"
}

// Match reports whether ev satisfies the condition.
func (c *Condition) Match(ev any) bool {
	s := c.pool.Get().(*evalState)
	s.reset(ev)
	ok := c.f(s)
	s.ev = nil
	c.pool.Put(s)
	return ok
}

// String returns the condition's text.
func (c *Condition) String() string { return c.text }
