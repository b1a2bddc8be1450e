package store

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// Query selects events. Each list matches any of its values, case-insensitively; the lists,
// the time range and the text are combined with AND.
type Query struct {
	Priorities []string
	Rules      []string
	Sources    []string
	Hostnames  []string
	Tags       []string
	// Text: every blank-separated term of it must start a word of the event's rule, output,
	// hostname, source, tags or output field values, punctuation included (ngin finds
	// nginx-7d9f8, nginx-7d finds it too, nginx-x2 does not).
	Text string
	// Since and Until bound when the store took the event (zero: unbounded).
	Since, Until time.Time
}

// GroupBy fields of CountBy, as falcosidekick-ui names them.
var GroupBy = []string{"priority", "rule", "source", "hostname", "tags"}

// Hit is one stored event.
type Hit struct {
	ID      uint64
	UUID    string
	Stored  time.Time
	JSON    []byte // the event's Falco JSON, as the outputs got it
	Outputs []string
}

// matcher is a compiled Query.
type matcher struct {
	prio                       []bool // nil: any
	rule, host, source, tagset []bool
	lo, hi                     int // entry index range
	text                       [][]byte
	prefixes                   [][]byte // indexed prefixes of text's words, for the bloom filters
}

// nameSet marks the dictionary ids whose name equals one of values, case-insensitively.
func nameSet(d *dict, values []string) []bool {
	if len(values) == 0 {
		return nil
	}
	set := make([]bool, len(d.names))
	for i, n := range d.names {
		for _, v := range values {
			if strings.EqualFold(n, strings.TrimSpace(v)) {
				set[i] = true
				break
			}
		}
	}
	return set
}

// compile resolves q against the dictionaries. Callers hold mu (read).
func (s *Store) compile(q Query) (*matcher, error) {
	m := &matcher{lo: 0, hi: len(s.entries)}
	if len(q.Priorities) > 0 {
		m.prio = make([]bool, 256)
		for _, p := range q.Priorities {
			pr, err := event.ParsePriority(p)
			if err != nil || pr == event.Default {
				return nil, fmt.Errorf("priority %q is not one of %s", p, event.PriorityNames)
			}
			m.prio[pr] = true
		}
	}
	m.rule = nameSet(&s.rules, q.Rules)
	m.host = nameSet(&s.hosts, q.Hostnames)
	m.source = nameSet(&s.sources, q.Sources)
	if tags := nameSet(&s.tags, q.Tags); tags != nil {
		m.tagset = make([]bool, len(s.tagsetTags))
		for i, ids := range s.tagsetTags {
			for _, id := range ids {
				if tags[id] {
					m.tagset[i] = true
					break
				}
			}
		}
	}
	if !q.Since.IsZero() {
		cut := q.Since.UnixMilli()
		m.lo = sort.Search(len(s.entries), func(i int) bool { return s.entries[i].stored >= cut })
	}
	if !q.Until.IsZero() {
		cut := q.Until.UnixMilli()
		m.hi = sort.Search(len(s.entries), func(i int) bool { return s.entries[i].stored >= cut })
	}
	m.text = queryTerms(q.Text)
	m.prefixes = termPrefixes(m.text)
	return m, nil
}

func (m *matcher) entry(e *entry) bool {
	return e.prio != gapPriority &&
		(m.prio == nil || m.prio[e.prio]) &&
		(m.rule == nil || m.rule[e.rule]) &&
		(m.host == nil || m.host[e.host]) &&
		(m.source == nil || m.source[e.source]) &&
		(m.tagset == nil || m.tagset[e.tags])
}

// Free-text scans open blocks and so are bounded in time: a page stops scanning once it is
// full and PageBudget has passed (its total is then a lower bound), any scan stops at
// ScanBudget. Scans without free text only read the in-memory index and always finish.
var (
	PageBudget = 150 * time.Millisecond
	ScanBudget = 1500 * time.Millisecond
)

// scan calls fn with the index of each matching entry, newest first, until fn returns false.
// A free-text scan that reaches deadline stops and reports partial. Callers hold mu (read).
func (s *Store) scan(m *matcher, deadline time.Time, fn func(i int) bool) (partial bool, err error) {
	if m.lo >= m.hi {
		return false, nil
	}
	if len(m.text) == 0 {
		for i := m.hi - 1; i >= m.lo; i-- {
			if m.entry(&s.entries[i]) && !fn(i) {
				return false, nil
			}
		}
		return false, nil
	}
	lo, hi := s.base+uint64(m.lo), s.base+uint64(m.hi) // id range
	var scratch textScratch
	// visit scans the texts of the events first... within [lo, hi); false stops.
	visit := func(first uint64, texts func(i int) []byte, n int) bool {
		top := first + uint64(n)
		if top > hi {
			top = hi
		}
		for id := top; id > first && id > lo; {
			id--
			i := int(id - s.base)
			if m.entry(&s.entries[i]) && matchText(texts(int(id-first)), m.text) && !fn(i) {
				return false
			}
		}
		return true
	}
	if len(s.open) > 0 && s.openFirst < hi {
		if !visit(s.openFirst, func(i int) []byte { return s.open[i].Text }, len(s.open)) {
			return false, nil
		}
	}
	for k := len(s.sealed) - 1; k >= 0; k-- {
		b := s.sealed[k]
		if b.first >= hi {
			continue
		}
		if b.first+uint64(b.n) <= lo {
			break
		}
		if b.bloom != nil && !bloomHas(b, m.prefixes) {
			continue
		}
		if time.Now().After(deadline) {
			return true, nil
		}
		texts, err := s.scanTexts(b, m.text, &scratch)
		if err != nil {
			return false, err
		}
		if texts != nil && !visit(b.first, func(i int) []byte { return texts[i] }, b.n) {
			return false, nil
		}
	}
	return false, nil
}

// scanTexts returns the search texts of sealed block b for a free-text scan, or nil when one
// of the query words appears nowhere in them (most blocks, for a rare word: they cost one
// decompression into buf and a substring search, no allocation). The texts alias buf and are
// valid until the next call. Callers hold mu (read).
func (s *Store) scanTexts(b *block, words [][]byte, sc *textScratch) ([][]byte, error) {
	var texts [][]byte
	err := s.blob.view(b.first, func(val []byte) error {
		_, tf, _, err := splitBlob(val)
		if err != nil {
			return err
		}
		raw, err := s.dec.DecodeAll(tf, sc.raw[:0])
		if err != nil {
			return err
		}
		sc.raw = raw
		for _, w := range words {
			if !bytes.Contains(raw, w) {
				return nil
			}
		}
		texts, err = decodeTexts(raw, sc.texts[:0])
		sc.texts = texts
		if err == nil && len(texts) != b.n {
			err = fmt.Errorf("%d texts, expected %d", len(texts), b.n)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", b.first, err)
	}
	return texts, nil
}

// textScratch is what a free-text scan reuses from block to block.
type textScratch struct {
	raw   []byte
	texts [][]byte
}

func bloomHas(b *block, prefixes [][]byte) bool {
	for _, p := range prefixes {
		if !b.bloom.Test(p) {
			return false
		}
	}
	return true
}

// SearchResult is a page of events, newest first, and how many match in all. Partial: a
// free-text scan stopped at its time budget, All is a lower bound.
type SearchResult struct {
	Hits    []Hit
	All     int
	Partial bool
}

// Search returns the events matching q from offset, at most limit of them.
func (s *Store) Search(q Query, offset, limit int) (SearchResult, error) {
	s.settleQueue()
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, err := s.compile(q)
	if err != nil {
		return SearchResult{}, err
	}
	var res SearchResult
	var ids []int
	start := time.Now()
	soft := start.Add(PageBudget)
	res.Partial, err = s.scan(m, start.Add(ScanBudget), func(i int) bool {
		if res.All >= offset && len(ids) < limit {
			ids = append(ids, i)
		}
		res.All++
		if len(m.text) > 0 && len(ids) == limit && time.Now().After(soft) {
			res.Partial = true
			return false
		}
		return true
	})
	if err != nil {
		return SearchResult{}, err
	}
	for _, i := range ids {
		h, err := s.hit(s.base + uint64(i))
		if err != nil {
			return SearchResult{}, err
		}
		res.Hits = append(res.Hits, h)
	}
	return res, nil
}

// hit reads event id. Callers hold mu (read).
func (s *Store) hit(id uint64) (Hit, error) {
	r, err := s.record(id)
	if err != nil {
		return Hit{}, err
	}
	return Hit{ID: id, UUID: string(r.UUID), Stored: time.UnixMilli(r.Stored), JSON: append([]byte(nil), r.JSON...),
		Outputs: splitList(r.Outputs)}, nil
}

// Count returns the number of events matching q; partial when a free-text scan stopped at
// ScanBudget (the count is then a lower bound).
func (s *Store) Count(q Query) (n int, partial bool, err error) {
	s.settleQueue()
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, err := s.compile(q)
	if err != nil {
		return 0, false, err
	}
	partial, err = s.scan(m, time.Now().Add(ScanBudget), func(int) bool { n++; return true })
	return n, partial, err
}

// CountBy counts the events matching q by field (one of GroupBy). An event with several tags
// counts once for each. partial: as Count.
func (s *Store) CountBy(q Query, field string) (counts map[string]int64, partial bool, err error) {
	s.settleQueue()
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, err := s.compile(q)
	if err != nil {
		return nil, false, err
	}
	var key func(e *entry) uint32
	var names []string
	switch field {
	case "priority":
		key = func(e *entry) uint32 { return uint32(e.prio) }
		names = make([]string, 256)
		for p := event.Debug; p <= event.Emergency; p++ {
			names[p] = p.String()
		}
	case "rule":
		key, names = func(e *entry) uint32 { return e.rule }, s.rules.names
	case "source":
		key, names = func(e *entry) uint32 { return e.source }, s.sources.names
	case "hostname":
		key, names = func(e *entry) uint32 { return e.host }, s.hosts.names
	case "tags":
		key, names = func(e *entry) uint32 { return e.tags }, s.tagsets.names
	default:
		return nil, false, fmt.Errorf("cannot group by %q: expected one of %s", field, strings.Join(GroupBy, ", "))
	}
	byID := make([]int64, len(names))
	partial, err = s.scan(m, time.Now().Add(ScanBudget), func(i int) bool {
		byID[key(&s.entries[i])]++
		return true
	})
	if err != nil {
		return nil, false, err
	}
	out := map[string]int64{}
	for id, n := range byID {
		if n == 0 {
			continue
		}
		if field == "tags" {
			for _, t := range s.tagsetTags[id] {
				out[s.tags.names[t]] += n
			}
			continue
		}
		out[names[id]] += n
	}
	return out, partial, nil
}

// Bucket is one interval of a Timeline: its start and its counts by priority.
type Bucket struct {
	Start  time.Time
	Counts map[string]int64
}

// Timeline counts the events matching q by priority in n equal intervals of [from, to).
// partial: as Count.
func (s *Store) Timeline(q Query, from, to time.Time, n int) (buckets []Bucket, partial bool, err error) {
	s.settleQueue()
	if n <= 0 || !to.After(from) {
		return nil, false, fmt.Errorf("timeline needs a positive number of buckets and from before to")
	}
	q.Since, q.Until = from, to
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, err := s.compile(q)
	if err != nil {
		return nil, false, err
	}
	width := to.Sub(from).Milliseconds() / int64(n)
	if width <= 0 {
		width = 1
	}
	counts := make([][256]int64, n)
	start := from.UnixMilli()
	partial, err = s.scan(m, time.Now().Add(ScanBudget), func(i int) bool {
		e := &s.entries[i]
		b := int((e.stored - start) / width)
		if b >= n {
			b = n - 1
		}
		if b >= 0 {
			counts[b][e.prio]++
		}
		return true
	})
	if err != nil {
		return nil, false, err
	}
	out := make([]Bucket, n)
	for b := range counts {
		out[b] = Bucket{Start: time.UnixMilli(start + int64(b)*width), Counts: map[string]int64{}}
		for p, c := range counts[b] {
			if c > 0 {
				out[b].Counts[event.Priority(p).String()] = c
			}
		}
	}
	return out, partial, nil
}

// Newest returns when the most recent event still held was stored, or false when none is.
func (s *Store) Newest() (time.Time, bool) {
	s.settleQueue()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := len(s.entries) - 1; i >= 0; i-- {
		if s.entries[i].prio != gapPriority {
			return time.UnixMilli(s.entries[i].stored), true
		}
	}
	return time.Time{}, false
}

// Has reports whether the event with that uuid (case-insensitive) is stored.
func (s *Store) Has(uuid string) bool {
	_, ok, err := s.Get(uuid)
	return ok && err == nil
}

// Get returns the event with that uuid (case-insensitive), or false.
func (s *Store) Get(uuid string) (Hit, bool, error) {
	s.settleQueue()
	h := hashUUID([]byte(uuid))
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := len(s.entries) - 1; i >= 0; i-- {
		if s.entries[i].uuid != h || s.entries[i].prio == gapPriority {
			continue
		}
		r, err := s.record(s.base + uint64(i))
		if err != nil {
			return Hit{}, false, err
		}
		if strings.EqualFold(string(r.UUID), uuid) {
			hit, err := s.hit(s.base + uint64(i))
			return hit, err == nil, err
		}
	}
	return Hit{}, false, nil
}
