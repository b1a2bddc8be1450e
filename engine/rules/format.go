package rules

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FieldNamer may be implemented by a Source to list every field name it knows (without
// arguments). Output tokens are then split exactly as Falco does: the longest known field name
// that prefixes the text after '%' wins, so "%ka.target.name/%ka.target.resource" and
// "%ka.user.namex" split like Falco. Without it, the token is the longest run of
// [A-Za-z0-9_.] the Source accepts.
type FieldNamer interface {
	FieldNames() []string
}

// outPart is a literal run or a field token of an output format.
type outPart struct {
	lit   string
	field int    // index in the field table; -1 for literals
	key   string // token text, the output_fields key ("ka.uri.param[command]")
}

// format is a compiled rule output.
type format struct {
	parts []outPart
	keys  []outPart // distinct field tokens, for output_fields
	size  int       // estimated rendered size, to size the buffer once
}

// compileFormat parses a Falco output format.
func (c *compiler) compileFormat(s string, names []string) (*format, error) {
	f := &format{}
	seen := map[string]bool{}
	lit := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i > lit {
			f.parts = append(f.parts, outPart{lit: s[lit:i], field: -1})
		}
		if i == len(s)-1 {
			return nil, fmt.Errorf("invalid output format: it cannot end with a %%")
		}
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' { // Falco's length modifier, ignored
			j++
		}
		part, n, err := c.token(s[j:], names)
		if err != nil {
			return nil, fmt.Errorf("invalid output format at offset %d: %w", i, err)
		}
		f.parts = append(f.parts, part)
		if !seen[part.key] {
			seen[part.key] = true
			f.keys = append(f.keys, part)
		}
		i = j + n - 1
		lit = j + n
	}
	if lit < len(s) {
		f.parts = append(f.parts, outPart{lit: s[lit:], field: -1})
	}
	for _, p := range f.parts {
		f.size += len(p.lit)
		if p.field >= 0 {
			f.size += 32
		}
	}
	return f, nil
}

// token resolves the field token at the start of s, returning the part and its length.
func (c *compiler) token(s string, names []string) (outPart, int, error) {
	withArg := func(name string) (outPart, int, error) {
		n := len(name)
		arg, hasArg := "", false
		if n < len(s) && s[n] == '[' {
			end := strings.IndexByte(s[n:], ']')
			if end < 0 {
				return outPart{}, 0, fmt.Errorf("field %s: missing ']' after its argument", name)
			}
			arg, hasArg = s[n+1:n+end], true
			n += end + 1
		}
		idx, err := c.field(name, arg, hasArg)
		if err != nil {
			return outPart{}, 0, err
		}
		return outPart{field: idx, key: s[:n]}, n, nil
	}
	if names != nil {
		best := ""
		for _, name := range names {
			if len(name) > len(best) && strings.HasPrefix(s, name) {
				best = name
			}
		}
		for name := range c.builtins {
			if len(name) > len(best) && strings.HasPrefix(s, name) {
				best = name
			}
		}
		if best == "" {
			return outPart{}, 0, fmt.Errorf("invalid formatting token %%%s", firstWord(s))
		}
		return withArg(best)
	}
	n := 0
	for n < len(s) && (isIdent(s[n]) || s[n] == '.') {
		n++
	}
	if n < len(s) && s[n] == '[' && strings.IndexByte(s[n:], ']') < 0 {
		return outPart{}, 0, fmt.Errorf("field %s: missing ']' after its argument", s[:n])
	}
	var firstErr error
	for l := n; l > 0; l-- {
		if s[l-1] == '.' {
			continue
		}
		p, m, err := withArg(s[:l])
		if err == nil {
			return p, m, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("invalid formatting token %%%s", firstWord(s))
	}
	return outPart{}, 0, firstErr
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// render builds the output text (without the time/priority prefix, which the caller adds)
// and the output_fields map for the current event.
func (f *format) render(b *strings.Builder, s *evalState, fields map[string]any) {
	for _, p := range f.parts {
		if p.field < 0 {
			b.WriteString(p.lit)
			continue
		}
		def := &s.defs[p.field]
		vals, ok := s.list(p.field)
		switch {
		case !ok:
			b.WriteString("<NA>")
		case def.List:
			b.WriteByte('(')
			for i, v := range vals {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(v)
			}
			b.WriteByte(')')
		default:
			b.WriteString(vals[0])
		}
	}
	for _, p := range f.keys {
		fields[p.key] = outputValue(s, p.field)
	}
}

func outputValue(s *evalState, i int) any {
	def := &s.defs[i]
	if def.OutputValue != nil {
		return def.OutputValue(s.ev)
	}
	vals, ok := s.list(i)
	if !ok {
		return nil
	}
	if def.List {
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = strings.Clone(v)
		}
		return out
	}
	return strings.Clone(vals[0])
}

// sortedTags returns the tags sorted and deduplicated, as Falco (a std::set) emits them.
func sortedTags(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	out := append([]string(nil), tags...)
	sort.Strings(out)
	w := 1
	for i := 1; i < len(out); i++ {
		if out[i] != out[w-1] {
			out[w] = out[i]
			w++
		}
	}
	return out[:w]
}

// builtinFields are the evt.* fields the engine itself provides for every source.
func builtinFields(src Source, tz *time.Location, hostname string) map[string]func(arg string, hasArg bool) (Field, error) {
	noArg := func(name string, f Field) func(string, bool) (Field, error) {
		return func(arg string, hasArg bool) (Field, error) {
			if hasArg {
				return Field{}, fmt.Errorf("field %s does not take an argument (got [%s])", name, arg)
			}
			return f, nil
		}
	}
	timeField := func(render func(t time.Time) string, raw bool) Field {
		f := Field{Extract: func(ev any, buf []string) ([]string, bool) {
			return append(buf, render(time.Unix(0, src.TimeNanos(ev)).In(tz))), true
		}}
		if raw {
			f.OutputValue = func(ev any) any { return src.TimeNanos(ev) }
		}
		return f
	}
	intField := func(v func(ns int64) int64) Field {
		return Field{Numeric: true, Extract: func(ev any, buf []string) ([]string, bool) {
			return append(buf, strconv.FormatInt(v(src.TimeNanos(ev)), 10)), true
		}}
	}
	constField := func(v string) Field {
		return Field{Extract: func(ev any, buf []string) ([]string, bool) { return append(buf, v), true }}
	}
	evtTime := timeField(func(t time.Time) string { return t.Format("15:04:05.000000000") }, true)
	return map[string]func(string, bool) (Field, error){
		"evt.time":         noArg("evt.time", evtTime),
		"evt.time.s":       noArg("evt.time.s", timeField(func(t time.Time) string { return t.Format("15:04:05") }, false)),
		"evt.time.iso8601": noArg("evt.time.iso8601", timeField(func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }, false)),
		"evt.datetime":     noArg("evt.datetime", timeField(func(t time.Time) string { return t.Format("2006-01-02 15:04:05.000000000") }, false)),
		"evt.datetime.s":   noArg("evt.datetime.s", timeField(func(t time.Time) string { return t.Format("2006-01-02 15:04:05") }, false)),
		"evt.rawtime":      noArg("evt.rawtime", intField(func(ns int64) int64 { return ns })),
		"evt.rawtime.s":    noArg("evt.rawtime.s", intField(func(ns int64) int64 { return ns / 1e9 })),
		"evt.rawtime.ns":   noArg("evt.rawtime.ns", intField(func(ns int64) int64 { return ns % 1e9 })),
		"evt.source":       noArg("evt.source", constField(src.Name())),
		"evt.hostname":     noArg("evt.hostname", constField(hostname)),
	}
}
