package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/saker-dev/saker/engine/event"
	"go.yaml.in/yaml/v3"
)

// File is one rules file: a name for messages (a path, or "default" for the embedded set) and
// its content. The embedded defaults and user files go through the same loader.
type File struct {
	Name string
	Data []byte
}

// LoadError is a rules file that cannot be loaded. It names the file, the line and the item
// (`rule "Create Privileged Pod"`, `macro "kevt"`, `list "x"`) so a user can find the mistake.
type LoadError struct {
	File string
	Line int    // 1-based; 0 when unknown
	Item string // empty for file-level errors
	Err  error
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Item != "" {
		b.WriteString(": ")
		b.WriteString(e.Item)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *LoadError) Unwrap() error { return e.Err }

// Warning is a non-fatal finding while loading: a rule skipped because it is for another
// source, a deprecated construct, an unknown top-level item.
type Warning struct {
	File string
	Line int
	Item string
	Msg  string
}

func (w Warning) String() string {
	s := w.File
	if w.Line > 0 {
		s += fmt.Sprintf(":%d", w.Line)
	}
	if w.Item != "" {
		s += ": " + w.Item
	}
	return s + ": " + w.Msg
}

// loc is where an item (or one of its keys) was defined.
type loc struct {
	file string
	line int
	item string
}

func (l loc) errorf(format string, args ...any) error {
	return &LoadError{File: l.file, Line: l.line, Item: l.item, Err: fmt.Errorf(format, args...)}
}

func (l loc) wrap(err error) error {
	return &LoadError{File: l.file, Line: l.line, Item: l.item, Err: err}
}

func (l loc) at(n *yaml.Node) loc {
	if n != nil && n.Line > 0 {
		l.line = n.Line
	}
	return l
}

// listDef, macroDef and ruleDef are the collected (not yet compiled) items. index is the
// position of the first definition (kept on redefinition, so order is stable); visibility is
// the id of the latest definition or append, which bounds which lists/macros it may reference,
// as in Falco.
type listDef struct {
	name       string
	items      []string
	index      int
	visibility int
	loc        loc
}

type macroDef struct {
	name       string
	cond       string
	index      int
	visibility int
	loc        loc
	condLoc    loc
}

// strOrList is an exception's fields or comps: one string or a list of strings.
type strOrList struct {
	set    bool
	isList bool
	item   string
	items  []string
}

// excValue is one exception value: a string or a (nested) list.
type excValue struct {
	isList bool
	item   string
	items  []excValue
}

type exceptionDef struct {
	name   string
	fields strOrList
	comps  strOrList
	values []excValue
	loc    loc
}

type ruleDef struct {
	name        string
	cond        string
	output      string
	desc        string
	source      string
	priority    event.Priority
	tags        []string
	enabled     bool
	skipUnknown bool
	exceptions  []*exceptionDef
	index       int
	loc         loc
	condLoc     loc
	outputLoc   loc
}

// collector accumulates items across files in load order, applying appends and overrides.
type collector struct {
	id       int
	lists    []*listDef
	listIdx  map[string]*listDef
	macros   []*macroDef
	macroIdx map[string]*macroDef
	rules    []*ruleDef
	ruleIdx  map[string]*ruleDef
	warnings []Warning
}

func newCollector() *collector {
	return &collector{listIdx: map[string]*listDef{}, macroIdx: map[string]*macroDef{}, ruleIdx: map[string]*ruleDef{}}
}

func (c *collector) warn(l loc, format string, args ...any) {
	c.warnings = append(c.warnings, Warning{File: l.file, Line: l.line, Item: l.item, Msg: fmt.Sprintf(format, args...)})
}

func (c *collector) nextID() int {
	c.id++
	return c.id
}

// readFile parses one rules file (possibly several YAML documents) into the collector.
func (c *collector) readFile(f File) error {
	dec := yaml.NewDecoder(bytes.NewReader(f.Data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return &LoadError{File: f.Name, Err: fmt.Errorf("invalid YAML: %w", err)}
		}
		root := resolve(&doc)
		if root.Kind == yaml.DocumentNode {
			if len(root.Content) == 0 {
				continue
			}
			root = resolve(root.Content[0])
		}
		if isNull(root) {
			continue
		}
		if root.Kind != yaml.SequenceNode {
			return &LoadError{File: f.Name, Line: root.Line, Err: errors.New("rules content is not a YAML sequence of items")}
		}
		for _, it := range root.Content {
			it = resolve(it)
			if isNull(it) {
				continue
			}
			if err := c.readItem(f.Name, it); err != nil {
				return err
			}
		}
	}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// get returns the value of key in mapping m, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := resolve(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return resolve(m.Content[i+1])
		}
	}
	return nil
}

func str(l loc, m *yaml.Node, key string) (string, error) {
	n := get(m, key)
	if n == nil || isNull(n) {
		return "", l.errorf("missing %q", key)
	}
	if n.Kind != yaml.ScalarNode {
		return "", l.at(n).errorf("%q must be a string", key)
	}
	return n.Value, nil
}

func optBool(l loc, m *yaml.Node, key string) (v, set bool, err error) {
	n := get(m, key)
	if n == nil {
		return false, false, nil
	}
	if n.Kind != yaml.ScalarNode {
		return false, false, l.at(n).errorf("%q must be true or false", key)
	}
	if err := n.Decode(&v); err != nil {
		return false, false, l.at(n).errorf("%q must be true or false, got %q", key, n.Value)
	}
	return v, true, nil
}

func strSeq(l loc, n *yaml.Node, key string) ([]string, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, l.at(n).errorf("%q must be a list of strings", key)
	}
	out := make([]string, 0, len(n.Content))
	for _, e := range n.Content {
		e = resolve(e)
		if e.Kind != yaml.ScalarNode {
			return nil, l.at(e).errorf("%q must contain only strings", key)
		}
		out = append(out, e.Value)
	}
	return out, nil
}

func (c *collector) readItem(file string, it *yaml.Node) error {
	l := loc{file: file, line: it.Line}
	if it.Kind != yaml.MappingNode {
		return l.errorf("unexpected element: each item must be a mapping (rule, macro, list, ...)")
	}
	switch {
	case get(it, "required_engine_version") != nil:
		n := get(it, "required_engine_version")
		if n.Kind != yaml.ScalarNode {
			return l.at(n).errorf("required_engine_version must be a number or a semver string")
		}
		return nil
	case get(it, "required_plugin_versions") != nil:
		if n := get(it, "required_plugin_versions"); n.Kind != yaml.SequenceNode {
			return l.at(n).errorf("required_plugin_versions must be a sequence")
		}
		return nil
	case get(it, "list") != nil:
		return c.readList(l, it)
	case get(it, "macro") != nil:
		return c.readMacro(l, it)
	case get(it, "rule") != nil:
		return c.readRule(l, it)
	}
	c.warn(l, "unknown top level item, ignored")
	return nil
}

// overrides reads the `override:` mapping: key -> "append" | "replace".
func overrides(l loc, it *yaml.Node, canAppend, canReplace []string) (app, rep map[string]bool, err error) {
	n := get(it, "override")
	if n == nil {
		return nil, nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, nil, l.at(n).errorf("override must be a mapping of keys to append or replace")
	}
	app, rep = map[string]bool{}, map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		key := k.Value
		if get(it, key) == nil {
			return nil, nil, l.at(k).errorf("an override for %q was specified but %q is not defined", key, key)
		}
		switch v.Value {
		case "append":
			if !slices.Contains(canAppend, key) {
				return nil, nil, l.at(v).errorf("key %q cannot be appended to, use 'replace' instead", key)
			}
			app[key] = true
		case "replace":
			if !slices.Contains(canReplace, key) {
				return nil, nil, l.at(v).errorf("key %q cannot be replaced", key)
			}
			rep[key] = true
		default:
			return nil, nil, l.at(v).errorf("override of %q must be append or replace, got %q", key, v.Value)
		}
	}
	return app, rep, nil
}

func (c *collector) readList(l loc, it *yaml.Node) error {
	name, err := str(l, it, "list")
	if err != nil {
		return err
	}
	l.item = fmt.Sprintf("list %q", name)
	items, err := strSeq(l, get(it, "items"), "items")
	if err != nil {
		return err
	}
	if get(it, "items") == nil {
		return l.errorf("missing \"items\"")
	}
	appendFlag, _, err := optBool(l, it, "append")
	if err != nil {
		return err
	}
	app, rep, err := overrides(l, it, []string{"items"}, []string{"items"})
	if err != nil {
		return err
	}
	if appendFlag && (len(app) > 0 || len(rep) > 0) {
		return l.errorf("keys 'override' and 'append: true' cannot be used together")
	}
	prev := c.listIdx[name]
	if appendFlag || app["items"] {
		if prev == nil {
			return l.errorf("list has 'append' but no list by that name already exists")
		}
		prev.items = append(prev.items, items...)
		prev.visibility = c.nextID()
		return nil
	}
	if rep["items"] && prev == nil {
		return l.errorf("list has 'override' but no list by that name already exists")
	}
	id := c.nextID()
	if prev != nil {
		prev.items, prev.visibility, prev.loc = items, id, l
		return nil
	}
	d := &listDef{name: name, items: items, index: id, visibility: id, loc: l}
	c.lists = append(c.lists, d)
	c.listIdx[name] = d
	return nil
}

func (c *collector) readMacro(l loc, it *yaml.Node) error {
	name, err := str(l, it, "macro")
	if err != nil {
		return err
	}
	l.item = fmt.Sprintf("macro %q", name)
	cond, err := str(l, it, "condition")
	if err != nil {
		return err
	}
	condLoc := l.at(get(it, "condition"))
	appendFlag, _, err := optBool(l, it, "append")
	if err != nil {
		return err
	}
	app, rep, err := overrides(l, it, []string{"condition"}, []string{"condition"})
	if err != nil {
		return err
	}
	if appendFlag && (len(app) > 0 || len(rep) > 0) {
		return l.errorf("keys 'override' and 'append: true' cannot be used together")
	}
	prev := c.macroIdx[name]
	if appendFlag || app["condition"] {
		if prev == nil {
			return l.errorf("macro has 'append' but no macro by that name already exists")
		}
		prev.cond += " " + cond
		prev.visibility = c.nextID()
		return nil
	}
	if rep["condition"] && prev == nil {
		return l.errorf("macro has 'override' but no macro by that name already exists")
	}
	id := c.nextID()
	if prev != nil {
		prev.cond, prev.visibility, prev.loc, prev.condLoc = cond, id, l, condLoc
		return nil
	}
	d := &macroDef{name: name, cond: cond, index: id, visibility: id, loc: l, condLoc: condLoc}
	c.macros = append(c.macros, d)
	c.macroIdx[name] = d
	return nil
}

var (
	ruleAppendable  = []string{"condition", "output", "desc", "tags", "exceptions"}
	ruleReplaceable = []string{"condition", "output", "desc", "priority", "tags", "exceptions", "enabled", "warn_evttypes", "skip-if-unknown-filter"}
)

func (c *collector) readRule(l loc, it *yaml.Node) error {
	name, err := str(l, it, "rule")
	if err != nil {
		return err
	}
	l.item = fmt.Sprintf("rule %q", name)
	appendFlag, _, err := optBool(l, it, "append")
	if err != nil {
		return err
	}
	app, rep, err := overrides(l, it, ruleAppendable, ruleReplaceable)
	if err != nil {
		return err
	}
	hasOverride := len(app) > 0 || len(rep) > 0
	if appendFlag && hasOverride {
		return l.errorf("keys 'override' and 'append: true' cannot be used together")
	}
	prev := c.ruleIdx[name]
	switch {
	case hasOverride:
		if prev == nil {
			return l.errorf("rule has 'override' but no rule by that name already exists")
		}
		for _, key := range ruleReplaceable {
			if get(it, key) != nil && !app[key] && !rep[key] {
				return l.at(get(it, key)).errorf("unexpected key %q: no corresponding entry under 'override' is defined", key)
			}
		}
		if err := c.updateRule(l, it, prev, app, true); err != nil {
			return err
		}
		return c.updateRule(l, it, prev, rep, false)
	case appendFlag:
		if prev == nil {
			return l.errorf("rule has 'append' but no rule by that name already exists")
		}
		keys := map[string]bool{}
		for _, k := range ruleAppendable {
			if get(it, k) != nil {
				keys[k] = true
			}
		}
		for _, k := range []string{"priority", "enabled", "source"} {
			if get(it, k) != nil {
				c.warn(l, "key %q is ignored in an appended rule (use override: {%s: replace})", k, k)
			}
		}
		return c.updateRule(l, it, prev, keys, true)
	}
	if get(it, "condition") == nil && get(it, "output") == nil && get(it, "desc") == nil && get(it, "priority") == nil {
		// An enabled-only item enables or disables an earlier rule (deprecated in Falco).
		enabled, set, err := optBool(l, it, "enabled")
		if err != nil {
			return err
		}
		if !set {
			return l.errorf("rule must have 'condition', 'output', 'desc' and 'priority' (or only 'enabled' to change an existing rule)")
		}
		if prev == nil {
			return l.errorf("rule has 'enabled' but no rule by that name already exists")
		}
		prev.enabled = enabled
		return nil
	}
	r := &ruleDef{name: name, enabled: true, source: "syscall", loc: l}
	if r.cond, err = str(l, it, "condition"); err != nil {
		return err
	}
	r.condLoc = l.at(get(it, "condition"))
	if r.output, err = str(l, it, "output"); err != nil {
		return err
	}
	r.output = strings.TrimSpace(r.output)
	r.outputLoc = l.at(get(it, "output"))
	if r.desc, err = str(l, it, "desc"); err != nil {
		return err
	}
	prio, err := str(l, it, "priority")
	if err != nil {
		return err
	}
	if r.priority, err = parseRulePriority(prio); err != nil {
		return l.at(get(it, "priority")).wrap(err)
	}
	if n := get(it, "source"); n != nil {
		if r.source, err = str(l, it, "source"); err != nil {
			return err
		}
	}
	if v, set, err := optBool(l, it, "enabled"); err != nil {
		return err
	} else if set {
		r.enabled = v
	}
	if v, set, err := optBool(l, it, "skip-if-unknown-filter"); err != nil {
		return err
	} else if set {
		r.skipUnknown = v
	}
	if n := get(it, "tags"); n != nil {
		if r.tags, err = strSeq(l, n, "tags"); err != nil {
			return err
		}
	}
	if n := get(it, "exceptions"); n != nil {
		if r.exceptions, err = readExceptions(l, n); err != nil {
			return err
		}
		for _, ex := range r.exceptions {
			if !ex.fields.set {
				return ex.loc.errorf("exception %q must have a 'fields' property", ex.name)
			}
		}
	}
	if prev != nil {
		if prev.source != r.source {
			return l.errorf("rule has been redefined with a different source (%s, was %s)", r.source, prev.source)
		}
		r.index = prev.index
		*prev = *r
		return nil
	}
	r.index = c.nextID()
	c.rules = append(c.rules, r)
	c.ruleIdx[name] = r
	return nil
}

// parseRulePriority reads a rule's priority as Falco does (case-insensitive, "info" accepted).
func parseRulePriority(s string) (event.Priority, error) {
	p, err := event.ParsePriority(s)
	if err != nil || p == event.Default {
		return 0, fmt.Errorf("invalid priority %q: expected one of %s", s, event.PriorityNames)
	}
	return p, nil
}

// updateRule appends to (appendMode) or replaces the given keys of an existing rule.
func (c *collector) updateRule(l loc, it *yaml.Node, r *ruleDef, keys map[string]bool, appendMode bool) error {
	if len(keys) == 0 {
		return nil
	}
	joinText := func(old, add string) string {
		if !appendMode {
			return add
		}
		if add == "" {
			return old
		}
		return old + " " + add
	}
	for _, key := range ruleReplaceable {
		if !keys[key] {
			continue
		}
		n := get(it, key)
		var err error
		switch key {
		case "condition", "output", "desc":
			var s string
			if s, err = str(l, it, key); err != nil {
				return err
			}
			switch key {
			case "condition":
				r.cond = joinText(r.cond, s)
				if !appendMode {
					r.condLoc = l.at(n)
				}
			case "output":
				r.output = strings.TrimSpace(joinText(r.output, s))
				if !appendMode {
					r.outputLoc = l.at(n)
				}
			case "desc":
				r.desc = joinText(r.desc, s)
			}
		case "tags":
			var tags []string
			if tags, err = strSeq(l, n, "tags"); err != nil {
				return err
			}
			if appendMode {
				r.tags = append(r.tags, tags...)
			} else {
				r.tags = tags
			}
		case "priority":
			var s string
			if s, err = str(l, it, key); err != nil {
				return err
			}
			if r.priority, err = parseRulePriority(s); err != nil {
				return l.at(n).wrap(err)
			}
		case "enabled", "skip-if-unknown-filter":
			var v bool
			if v, _, err = optBool(l, it, key); err != nil {
				return err
			}
			if key == "enabled" {
				r.enabled = v
			} else {
				r.skipUnknown = v
			}
		case "exceptions":
			var exs []*exceptionDef
			if exs, err = readExceptions(l, n); err != nil {
				return err
			}
			if !appendMode {
				for _, ex := range exs {
					if !ex.fields.set {
						return ex.loc.errorf("exception %q must have a 'fields' property", ex.name)
					}
				}
				r.exceptions = exs
				continue
			}
			for _, ex := range exs {
				i := slices.IndexFunc(r.exceptions, func(p *exceptionDef) bool { return p.name == ex.name })
				if i < 0 {
					if !ex.fields.set {
						return ex.loc.errorf("exception %q must have a 'fields' property", ex.name)
					}
					if len(ex.values) == 0 {
						return ex.loc.errorf("exception %q must have a 'values' property", ex.name)
					}
					r.exceptions = append(r.exceptions, ex)
					continue
				}
				if ex.fields.set || ex.comps.set {
					return ex.loc.errorf("cannot append fields or comps to existing exception %q, only values", ex.name)
				}
				// Copy so a rule redefinition sharing the slice is not affected.
				cp := *r.exceptions[i]
				cp.values = append(slices.Clip(cp.values), ex.values...)
				r.exceptions[i] = &cp
			}
		}
	}
	c.nextID()
	return nil
}

func readStrOrList(l loc, n *yaml.Node, key string) (strOrList, error) {
	if n == nil || isNull(n) {
		return strOrList{}, nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return strOrList{set: true, item: n.Value}, nil
	case yaml.SequenceNode:
		items, err := strSeq(l, n, key)
		return strOrList{set: true, isList: true, items: items}, err
	}
	return strOrList{}, l.at(n).errorf("%q must be a string or a list of strings", key)
}

func readExcValue(l loc, n *yaml.Node, depth int) (excValue, error) {
	n = resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		return excValue{item: n.Value}, nil
	case yaml.SequenceNode:
		if depth > 2 {
			return excValue{}, l.at(n).errorf("exception values nest too deeply")
		}
		v := excValue{isList: true}
		for _, e := range n.Content {
			ev, err := readExcValue(l, e, depth+1)
			if err != nil {
				return excValue{}, err
			}
			v.items = append(v.items, ev)
		}
		return v, nil
	}
	return excValue{}, l.at(n).errorf("exception values must be strings or lists")
}

func readExceptions(l loc, n *yaml.Node) ([]*exceptionDef, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, l.at(n).errorf("exceptions must be a list")
	}
	var out []*exceptionDef
	for _, e := range n.Content {
		e = resolve(e)
		el := l.at(e)
		if e.Kind != yaml.MappingNode {
			return nil, el.errorf("each exception must be a mapping with name, fields, comps and values")
		}
		name, err := str(el, e, "name")
		if err != nil {
			return nil, el.errorf("exception must have a 'name'")
		}
		ex := &exceptionDef{name: name, loc: el}
		if ex.fields, err = readStrOrList(el, get(e, "fields"), "fields"); err != nil {
			return nil, err
		}
		if ex.comps, err = readStrOrList(el, get(e, "comps"), "comps"); err != nil {
			return nil, err
		}
		if vn := get(e, "values"); vn != nil && !isNull(vn) {
			if vn.Kind != yaml.SequenceNode {
				return nil, el.at(vn).errorf("exception %q: values must be a list", name)
			}
			for _, v := range vn.Content {
				ev, err := readExcValue(el, v, 0)
				if err != nil {
					return nil, err
				}
				ex.values = append(ex.values, ev)
			}
		}
		out = append(out, ex)
	}
	return out, nil
}
