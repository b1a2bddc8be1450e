package rules

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// Matching selects how many rules may alert for one event.
type Matching int

const (
	// MatchFirst alerts only for the first matching rule in file order (Falco's default
	// rule_matching: first).
	MatchFirst Matching = iota
	// MatchAll alerts for every matching rule.
	MatchAll
)

// ParseMatching reads "first" or "all" (case-insensitive; empty means first).
func ParseMatching(s string) (Matching, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "first":
		return MatchFirst, nil
	case "all":
		return MatchAll, nil
	}
	return MatchFirst, fmt.Errorf("rule matching %q is not one of first, all", s)
}

func (m Matching) String() string {
	if m == MatchAll {
		return "all"
	}
	return "first"
}

// Options tune Load. The zero value is Falco's behaviour on this host.
type Options struct {
	// Matching is first (default) or all.
	Matching Matching
	// Hostname goes into every alert; empty means os.Hostname().
	Hostname string
	// Location is the time zone of the output's leading clock time (Falco prints local time);
	// nil means time.Local.
	Location *time.Location
}

// Rule is a loaded rule. Its fields are read-only.
type Rule struct {
	Name     string
	Desc     string
	Priority event.Priority
	Source   string
	Tags     []string // sorted, deduplicated
	Enabled  bool
	File     string // where it was (last) defined
	Line     int

	cond cond
	out  *format
}

// Engine is a compiled rule set for one source. It is immutable and safe for concurrent use.
type Engine struct {
	src      Source
	rules    []*Rule // every compiled rule, in file order
	enabled  []*Rule
	fields   []Field
	nmacros  int
	matching Matching
	hostname string
	pool     sync.Pool
}

// Load reads the rules files in order (later files append to or redefine earlier items),
// compiles every rule of src's source and returns the engine plus warnings (rules for other
// sources skipped, unknown items). The error is a *LoadError naming the file, line and item.
func Load(src Source, files []File, opts Options) (*Engine, []Warning, error) {
	if src == nil {
		return nil, nil, errors.New("rules: no source")
	}
	col := newCollector()
	for _, f := range files {
		if err := col.readFile(f); err != nil {
			return nil, col.warnings, err
		}
	}
	tz := opts.Location
	if tz == nil {
		tz = time.Local
	}
	host := opts.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	c := newCompiler(src, col, builtinFields(src, tz, host))
	c.expandLists()
	var names []string
	if fn, ok := src.(FieldNamer); ok {
		names = fn.FieldNames()
	}
	e := &Engine{src: src, matching: opts.Matching, hostname: host}
	for _, rd := range col.rules {
		if rd.source != src.Name() {
			col.warn(rd.loc, "source %q is not supported (only %s): rule skipped", rd.source, src.Name())
			continue
		}
		r, err := c.compileRule(rd, names)
		if err != nil {
			var ce *compileErr
			if rd.skipUnknown && errors.As(err, &ce) && ce.unknownField {
				col.warn(rd.loc, "skipped (skip-if-unknown-filter): %v", err)
				continue
			}
			return nil, col.warnings, err
		}
		e.rules = append(e.rules, r)
		if r.Enabled {
			e.enabled = append(e.enabled, r)
		}
	}
	// Macros no k8s_audit rule uses (a user's syscall macros, say) are still checked for
	// syntax; an error there is a warning, since saker never evaluates them.
	for _, m := range col.macros {
		if _, done := c.asts[m.name]; done {
			continue
		}
		if _, err := parseCondition(m.cond); err != nil {
			col.warn(m.condLoc, "condition does not parse (macro unused by %s rules): %v", src.Name(), err)
		}
	}
	e.fields = c.fields
	e.nmacros = c.nmacros
	e.pool.New = func() any { return e.NewEvaluator() }
	return e, col.warnings, nil
}

// compileRule compiles a rule's condition (with its exceptions) and output.
func (c *compiler) compileRule(rd *ruleDef, names []string) (*Rule, error) {
	ast, err := parseCondition(rd.cond)
	if err != nil {
		return nil, rd.condLoc.wrap(fmt.Errorf("condition: %w", err))
	}
	f, err := c.compile(ast, math.MaxInt)
	if err != nil {
		return nil, c.located(rd, err)
	}
	for _, ex := range rd.exceptions {
		n, err := exceptionNode(ex)
		if err != nil {
			return nil, ex.loc.wrap(err)
		}
		if n == nil {
			continue
		}
		g, err := c.compile(n, math.MaxInt)
		if err != nil {
			return nil, ex.loc.wrap(fmt.Errorf("exception %q: %w", ex.name, err))
		}
		prev := f
		f = func(s *evalState) bool { return prev(s) && !g(s) }
	}
	out, err := c.compileFormat("%evt.time: "+rd.priority.String()+" "+rd.output, names)
	if err != nil {
		return nil, rd.outputLoc.wrap(fmt.Errorf("output: %w", err))
	}
	return &Rule{
		Name: rd.name, Desc: rd.desc, Priority: rd.priority, Source: rd.source, Tags: sortedTags(rd.tags),
		Enabled: rd.enabled, File: rd.loc.file, Line: rd.loc.line, cond: f, out: out,
	}, nil
}

// located turns a compile error into a LoadError at the rule's condition or at the macro the
// error is in.
func (c *compiler) located(rd *ruleDef, err error) error {
	var ce *compileErr
	if errors.As(err, &ce) && ce.macro != nil {
		m := ce.macro
		l := m.condLoc
		l.item = fmt.Sprintf("macro %q (used by rule %q)", m.name, rd.name)
		return l.wrap(fmt.Errorf("condition at offset %d: %w", ce.off, ce))
	}
	if ce != nil {
		return rd.condLoc.wrap(fmt.Errorf("condition at offset %d: %w", ce.off, ce))
	}
	return rd.condLoc.wrap(fmt.Errorf("condition: %w", err))
}

// Rules lists the compiled rules of the engine's source in file order, enabled or not.
func (e *Engine) Rules() []*Rule { return slices.Clone(e.rules) }

// Matching reports the engine's rule matching mode.
func (e *Engine) Matching() Matching { return e.matching }

// Evaluator evaluates events against an Engine from one goroutine. It owns the scratch buffers
// that keep evaluation allocation-free; create one per goroutine with NewEvaluator.
type Evaluator struct {
	e *Engine
	s *evalState
	b strings.Builder
}

// NewEvaluator returns an evaluator for one goroutine.
func (e *Engine) NewEvaluator() *Evaluator {
	return &Evaluator{e: e, s: newEvalState(e.fields, e.nmacros)}
}

// Evaluate is Evaluator.Evaluate for callers without their own evaluator; it is safe for
// concurrent use (evaluators are pooled).
func (e *Engine) Evaluate(ev any, fn func(*event.Event)) int {
	v := e.pool.Get().(*Evaluator)
	n := v.Evaluate(ev, fn)
	v.s.ev = nil
	e.pool.Put(v)
	return n
}

// Match calls fn for each enabled rule that matches ev, in file order, stopping after the
// first with MatchFirst. It renders nothing, so it does not allocate. It returns the count.
func (v *Evaluator) Match(ev any, fn func(*Rule)) int {
	s := v.s
	s.reset(ev)
	n := 0
	for _, r := range v.e.enabled {
		if r.cond(s) {
			n++
			if fn != nil {
				fn(r)
			}
			if v.e.matching == MatchFirst {
				break
			}
		}
	}
	return n
}

// Evaluate matches ev like Match and calls fn with Falco's alert for each matching rule.
// Received is left for the caller to set.
func (v *Evaluator) Evaluate(ev any, fn func(*event.Event)) int {
	return v.Match(ev, func(r *Rule) {
		if fn != nil {
			fn(v.alert(r))
		}
	})
}

// alert renders the alert of r for the current event.
func (v *Evaluator) alert(r *Rule) *event.Event {
	s := v.s
	fields := make(map[string]any, len(r.out.keys))
	v.b.Reset()
	v.b.Grow(r.out.size)
	r.out.render(&v.b, s, fields)
	return &event.Event{
		Output:       v.b.String(),
		Priority:     r.Priority,
		PriorityRaw:  r.Priority.String(),
		Rule:         r.Name,
		Time:         time.Unix(0, v.e.src.TimeNanos(s.ev)).UTC(),
		OutputFields: fields,
		Source:       v.e.src.Name(),
		Tags:         r.Tags,
		Hostname:     v.e.hostname,
	}
}
