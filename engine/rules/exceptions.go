package rules

import (
	"fmt"
	"strings"
)

// exceptionNode builds the condition an exception excludes, as Falco expands it:
//
//	fields: f, comps: in (default), values: [a, b]        -> f in (a, b)
//	fields: [f1, f2], comps: [=, in] (default =), values: [[a, [b, c]], ...]
//	                                                        -> (f1 = a and f2 in (b, c)) or ...
//
// It returns nil when the exception has no values (it then excludes nothing). Values with a
// space are quoted by Falco, so only values without one can name a list to splice.
func exceptionNode(ex *exceptionDef) (node, error) {
	if !ex.fields.set {
		return nil, fmt.Errorf("exception %q has no fields", ex.name)
	}
	if !ex.fields.isList {
		comp := "in"
		if ex.comps.set {
			if ex.comps.isList {
				return nil, fmt.Errorf("exception %q: fields and comps must both be strings or both be lists", ex.name)
			}
			comp = ex.comps.item
		}
		if !isListOp(comp) {
			return nil, fmt.Errorf("exception %q: when fields is a single value, comps must be one of in, pmatch, intersects, not %q", ex.name, comp)
		}
		if len(ex.values) == 0 {
			return nil, nil
		}
		c, err := exceptionCheck(ex.name, ex.fields.item, comp)
		if err != nil {
			return nil, err
		}
		c.isList = true
		for _, v := range ex.values {
			if v.isList {
				return nil, fmt.Errorf("exception %q: values must be a list of strings when fields is a single field", ex.name)
			}
			c.list = append(c.list, excLiteral(v.item))
		}
		return c, nil
	}
	comps := ex.comps.items
	if !ex.comps.set {
		comps = make([]string, len(ex.fields.items))
		for i := range comps {
			comps[i] = "="
		}
	} else if !ex.comps.isList {
		return nil, fmt.Errorf("exception %q: fields and comps must both be strings or both be lists", ex.name)
	}
	if len(comps) != len(ex.fields.items) {
		return nil, fmt.Errorf("exception %q: fields and comps lists must have equal length (%d and %d)", ex.name, len(ex.fields.items), len(comps))
	}
	for _, op := range comps {
		if !isOperator(op) {
			return nil, fmt.Errorf("exception %q: %q is not a supported comparison operator", ex.name, op)
		}
	}
	var rows []node
	for ri, row := range ex.values {
		if !row.isList || len(row.items) != len(ex.fields.items) {
			return nil, fmt.Errorf("exception %q: value %d must be a list of %d values, one per field", ex.name, ri+1, len(ex.fields.items))
		}
		var checks []node
		for k, f := range ex.fields.items {
			c, err := exceptionCheck(ex.name, f, comps[k])
			if err != nil {
				return nil, err
			}
			v := row.items[k]
			switch {
			case c.op == "exists":
			case isListOp(c.op):
				c.isList = true
				if v.isList {
					for _, it := range v.items {
						if it.isList {
							return nil, fmt.Errorf("exception %q: value %d, field %s: lists cannot nest", ex.name, ri+1, f)
						}
						c.list = append(c.list, excLiteral(it.item))
					}
				} else if strings.HasPrefix(v.item, "(") {
					p := &parser{in: v.item, i: 1}
					vals, err := parseListText(p)
					if err != nil {
						return nil, fmt.Errorf("exception %q: value %d, field %s: %w", ex.name, ri+1, f, err)
					}
					c.list = vals
				} else {
					c.list = []value{{s: v.item}}
				}
			default:
				if v.isList {
					return nil, fmt.Errorf("exception %q: value %d, field %s: a list needs a list operator (in, intersects, pmatch), not %s", ex.name, ri+1, f, c.op)
				}
				c.val = excLiteral(v.item)
			}
			checks = append(checks, c)
		}
		if len(checks) == 1 {
			rows = append(rows, checks[0])
		} else {
			rows = append(rows, &andNode{kids: checks})
		}
	}
	switch len(rows) {
	case 0:
		return nil, nil
	case 1:
		return rows[0], nil
	}
	return &orNode{kids: rows}, nil
}

func excLiteral(s string) value { return value{s: s, quoted: strings.Contains(s, " ")} }

// parseListText parses the remainder of a parenthesised list, reporting syntax errors.
func parseListText(p *parser) (vals []value, err error) {
	defer func() {
		if r := recover(); r != nil {
			se, ok := r.(*SyntaxError)
			if !ok {
				panic(r)
			}
			err = se
		}
	}()
	vals = p.listRemainder()
	p.blank()
	if p.i != len(p.in) {
		p.fail("unexpected text after the list")
	}
	return vals, nil
}

// exceptionCheck parses an exception field reference ("ka.uri.param[x]") into a check node.
func exceptionCheck(exName, field, op string) (*checkNode, error) {
	n := fieldNameLen(field)
	if n == 0 {
		return nil, fmt.Errorf("exception %q: %q is not a field name", exName, field)
	}
	c := &checkNode{field: field[:n], op: op}
	if rest := field[n:]; rest != "" {
		if len(rest) < 2 || rest[0] != '[' || rest[len(rest)-1] != ']' {
			return nil, fmt.Errorf("exception %q: %q is not a field name", exName, field)
		}
		c.arg, c.hasArg = rest[1:len(rest)-1], true
	}
	if !isOperator(op) {
		return nil, fmt.Errorf("exception %q: %q is not a supported comparison operator", exName, op)
	}
	return c, nil
}
