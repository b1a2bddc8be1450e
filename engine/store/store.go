// Package store is the web UI's embedded event store: every alert that enters the pipeline,
// searchable by priority, rule, source, hostname, tags, time and free text, with bounded
// retention (by age and by count).
//
// The store is built for counts and filtered pages over a million events on a small machine
// (see docs/architecture.md for the measurements behind the design): each event's indexed
// attributes live in memory as a fixed-size entry (32 bytes, strings interned), so a count
// or a filtered page is a scan of a slice; the events themselves (their Falco JSON, the
// outputs they went to, their search text) are kept in zstd-compressed blocks of BlockSize
// events, in memory or in a bbolt file (ui.storage.path), each sealed block with a bloom
// filter of its words' prefixes so a free-text search only opens the blocks that may match.
//
// The store is fed like an output: Offer never blocks (a full queue drops the event and
// counts it), one goroutine writes.
package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/klauspost/compress/zstd"

	"github.com/saker-dev/saker/engine/event"
)

// Options configure a store.
type Options struct {
	// Path is the bbolt file holding the events; empty keeps them in memory only.
	Path string
	// MaxAge drops events stored longer ago than this (0: no age limit).
	MaxAge time.Duration
	// MaxEvents drops the oldest events past this count (0: no count limit).
	MaxEvents int
	// QueueSize bounds the events waiting to be stored; past it Offer drops (default 10000).
	QueueSize int
	// BlockSize is the number of events per compressed block (default 512).
	BlockSize int
	// FlushInterval is how often the open block is written to Path (default 2s): at most this
	// much is lost on a crash.
	FlushInterval time.Duration
	Log           *slog.Logger
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// entry is the in-memory index of one event. Entries are ordered by id, and so by stored
// time.
type entry struct {
	stored int64  // unix milliseconds
	uuid   uint32 // hash of the uuid; a match is confirmed on the record
	rule   uint32
	host   uint32
	source uint32
	tags   uint32 // tag set id
	prio   uint8
}

// gapPriority marks the entry of an id whose event was lost; no query matches it.
const gapPriority = 255

// block is a sealed, compressed run of events starting at id first.
type block struct {
	first uint64
	n     int
	size  int                // compressed bytes
	bloom *bloom.BloomFilter // nil: unknown, the block is always opened
}

// dict interns strings (rules, hostnames, sources, tag sets).
type dict struct {
	ids   map[string]uint32
	names []string
}

func newDict() dict { return dict{ids: map[string]uint32{}} }

func (d *dict) id(b []byte) uint32 {
	if id, ok := d.ids[string(b)]; ok {
		return id
	}
	id := uint32(len(d.names))
	s := string(b)
	d.ids[s] = id
	d.names = append(d.names, s)
	return id
}

// Store is the event store. Its methods are safe for concurrent use.
type Store struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	blob blobs
	enc  *zstd.Encoder
	dec  *zstd.Decoder

	mu                                   sync.RWMutex
	base                                 uint64 // id of entries[0]
	entries                              []entry
	rules, hosts, sources, tagsets, tags dict
	tagsetTags                           [][]uint32 // tag set id -> its tag ids
	sealed                               []*block   // ascending first
	open                                 []record   // events not sealed yet, ids openFirst...
	openFirst                            uint64
	openDirty                            bool
	metaCache                            *blockCache[[]record]

	// builder makes records on the writer goroutine (outside mu).
	builder recordBuilder
	// scratch is the writer's reusable buffers (used under mu).
	scratch struct {
		recs        []record
		meta, texts []byte
		tf, mf      []byte
		textRefs    [][]byte
		bloom       bloomScratch
	}

	in chan item
	// settle asks the writer to store what is queued now; it closes the channel it gets when
	// done (see settleQueue).
	settle  chan chan struct{}
	dropped atomic.Uint64
	stored  atomic.Uint64
	subMu   sync.Mutex
	subs    map[chan []byte]struct{}
	done    chan struct{}
	wg      sync.WaitGroup
	closed  atomic.Bool
}

type item struct {
	ev      *event.Event
	outputs []string
}

// Open opens (or creates) the store and starts its writer.
func Open(opts Options) (*Store, error) {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 10000
	}
	if opts.BlockSize <= 0 {
		opts.BlockSize = 512
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 2 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(2))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	s := &Store{opts: opts, log: opts.Log, now: opts.Now, enc: enc, dec: dec,
		rules: newDict(), hosts: newDict(), sources: newDict(), tagsets: newDict(), tags: newDict(),
		metaCache: newBlockCache[[]record](16), in: make(chan item, opts.QueueSize), settle: make(chan chan struct{}), subs: map[chan []byte]struct{}{}, done: make(chan struct{})}
	if opts.Path == "" {
		s.blob = newMemBlobs()
	} else {
		b, err := openBoltBlobs(opts.Path)
		if err != nil {
			return nil, fmt.Errorf("ui.storage.path: %w", err)
		}
		s.blob = b
		if err := s.load(); err != nil {
			b.close()
			return nil, fmt.Errorf("ui.storage.path %s: %w", opts.Path, err)
		}
		// Rebuilding the index decompressed every block: give that memory back now rather
		// than when the heap next reaches its limit.
		b.release()
		debug.FreeOSMemory()
	}
	s.mu.Lock()
	s.retain()
	s.mu.Unlock()
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

// load rebuilds the in-memory index from the stored blocks.
func (s *Store) load() error {
	next := uint64(1)
	first := true
	err := s.blob.each(func(key uint64, val []byte) error {
		bf, textFrame, metaFrame, err := splitBlob(val)
		if err != nil {
			return fmt.Errorf("block %d: %w", key, err)
		}
		recs, err := s.decodeMetaFrame(metaFrame)
		if err != nil {
			return fmt.Errorf("block %d: %w", key, err)
		}
		if first {
			s.base, first = key, false
		} else if key != next {
			// A gap (a block lost to a crash before its first write): pad the index with
			// entries no query matches, so ids stay positions.
			last := int64(0)
			if len(s.entries) > 0 {
				last = s.entries[len(s.entries)-1].stored
			}
			for id := next; id < key; id++ {
				s.entries = append(s.entries, entry{stored: last, prio: gapPriority})
			}
		}
		for i := range recs {
			s.entries = append(s.entries, s.index(&recs[i]))
		}
		if bf == nil {
			texts, err := s.decodeTextFrame(textFrame)
			if err != nil {
				return fmt.Errorf("block %d: %w", key, err)
			}
			bf = newBloom(texts, &s.scratch.bloom)
		}
		s.sealed = append(s.sealed, &block{first: key, n: len(recs), size: len(val), bloom: bf})
		next = key + uint64(len(recs))
		return nil
	})
	if err != nil {
		return err
	}
	s.openFirst = next
	if first {
		s.base = next
	}
	s.stored.Store(uint64(len(s.entries)))
	s.log.Info("ui store loaded", "path", s.opts.Path, "events", len(s.entries), "blocks", len(s.sealed))
	return nil
}

// splitBlob separates a stored block's parts: its bloom filter (nil for a block stored
// before it was sealed), its compressed texts and its compressed records.
func splitBlob(val []byte) (bf *bloom.BloomFilter, texts, meta []byte, err error) {
	rd := &reader{buf: val}
	bb := rd.bytes()
	texts = rd.bytes()
	if rd.err != nil {
		return nil, nil, nil, rd.err
	}
	if len(bb) > 0 {
		bf = &bloom.BloomFilter{}
		if err := bf.UnmarshalBinary(bb); err != nil {
			return nil, nil, nil, fmt.Errorf("bloom filter: %w", err)
		}
	}
	return bf, texts, rd.buf, nil
}

func (s *Store) decodeMetaFrame(frame []byte) ([]record, error) {
	raw, err := s.dec.DecodeAll(frame, nil)
	if err != nil {
		return nil, err
	}
	return decodeMeta(raw)
}

func (s *Store) decodeTextFrame(frame []byte) ([][]byte, error) {
	raw, err := s.dec.DecodeAll(frame, nil)
	if err != nil {
		return nil, err
	}
	return decodeTexts(raw, nil)
}

// index makes r's entry, interning its strings. Callers hold mu.
func (s *Store) index(r *record) entry {
	tsID := s.tagsets.id(r.Tags)
	if int(tsID) == len(s.tagsetTags) {
		tags := splitList(r.Tags)
		ids := make([]uint32, len(tags))
		for i, t := range tags {
			ids[i] = s.tags.id([]byte(t))
		}
		s.tagsetTags = append(s.tagsetTags, ids)
	}
	return entry{stored: r.Stored, uuid: hashUUID(r.UUID), rule: s.rules.id(r.Rule), host: s.hosts.id(r.Hostname),
		source: s.sources.id(r.Source), tags: tsID, prio: r.Priority}
}

// hashUUID is the 32-bit FNV-1a hash of u in lowercase, computed without a copy when u is
// ASCII (a uuid is hex): it runs for every stored event.
func hashUUID(u []byte) uint32 {
	for _, c := range u {
		if c >= utf8.RuneSelf {
			return fnv1a(bytes.ToLower(u), false)
		}
	}
	return fnv1a(u, true)
}

// fnv1a is the 32-bit FNV-1a hash of b, with ASCII capitals lowercased when lower is set.
func fnv1a(b []byte, lower bool) uint32 {
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for _, c := range b {
		if lower && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h = (h ^ uint32(c)) * prime32
	}
	return h
}

// Offer queues ev for storage; it never blocks. outputs are the outputs ev was queued for.
// It returns false when the queue is full (the event is dropped and counted) or the store
// is closed.
func (s *Store) Offer(ev *event.Event, outputs []string) bool {
	if s.closed.Load() {
		return false
	}
	select {
	case s.in <- item{ev: ev, outputs: outputs}:
		return true
	default:
		s.dropped.Add(1)
		return false
	}
}

// Dropped is the number of events Offer dropped because the queue was full.
func (s *Store) Dropped() uint64 { return s.dropped.Load() }

// QueueDepth is the number of events waiting to be stored.
func (s *Store) QueueDepth() int { return len(s.in) }

func (s *Store) writer() {
	defer s.wg.Done()
	// An ordinary goroutine. It once ran on a thread of its own at nice 10, to yield the CPU
	// to the inputs; under load that cost 5% more CPU per event and 5-8% of the end-to-end
	// rate (interleaved runs, docs/operations.md), the store's work being the same either way.
	// The writer wakes every batchInterval and stores what queued meanwhile: woken for each
	// event, it cost the ingest path a scheduler round trip per event.
	batchTick := time.NewTicker(batchInterval)
	defer batchTick.Stop()
	flushTick := time.NewTicker(s.opts.FlushInterval)
	defer flushTick.Stop()
	batch := make([]item, 0, 256)
	drain := func() {
		for {
			batch = batch[:0]
		more:
			for len(batch) < cap(batch) {
				select {
				case it := <-s.in:
					batch = append(batch, it)
				default:
					break more
				}
			}
			if len(batch) == 0 {
				return
			}
			s.add(batch)
		}
	}
	for {
		select {
		case <-batchTick.C:
			drain()
		case done := <-s.settle:
			drain()
			close(done)
		case <-flushTick.C:
			s.mu.Lock()
			s.retain()
			s.flushOpen()
			s.mu.Unlock()
		case <-s.done:
			drain()
			s.mu.Lock()
			s.flushOpen()
			s.mu.Unlock()
			return
		}
	}
}

// settleQueue has the writer store what is queued before a query runs, so that a query
// sees every alert accepted before it was made (a script that posts an alert and then
// searches finds it), waiting at most settleTimeout: a busy writer delays, never blocks,
// the query.
func (s *Store) settleQueue() {
	if len(s.in) == 0 || s.closed.Load() {
		return
	}
	done := make(chan struct{})
	t := time.NewTimer(settleTimeout)
	defer t.Stop()
	select {
	case s.settle <- done:
	case <-t.C:
		return
	}
	select {
	case <-done:
	case <-t.C:
	}
}

const settleTimeout = 250 * time.Millisecond

// batchInterval is how long an event may wait in the queue before the writer stores it.
const batchInterval = 20 * time.Millisecond

// add stores a batch of events.
func (s *Store) add(batch []item) {
	recs := s.scratch.recs[:0]
	now := s.now().UnixMilli()
	for _, it := range batch {
		recs = append(recs, s.builder.build(it.ev, it.outputs, now))
	}
	s.scratch.recs = recs
	s.mu.Lock()
	for i := range recs {
		s.entries = append(s.entries, s.index(&recs[i]))
		if s.open == nil {
			s.open = make([]record, 0, s.opts.BlockSize)
		}
		s.open = append(s.open, recs[i])
		s.openDirty = true
		if len(s.open) >= s.opts.BlockSize {
			s.seal()
		}
	}
	s.retain()
	s.mu.Unlock()
	s.stored.Add(uint64(len(recs)))
	s.publish(recs)
}

// recordBuilder assembles records on the writer goroutine. It reuses its buffers, so a
// record costs one allocation for all its fields: the store's work is on the ingest path's
// CPU budget.
type recordBuilder struct {
	keys []string
	text []byte
}

func (rb *recordBuilder) build(ev *event.Event, outputs []string, stored int64) record {
	t := rb.text[:0]
	for _, s := range [...]string{ev.Rule, ev.Output, ev.Hostname, ev.Source} {
		t = append(append(t, s...), '\n')
	}
	t = appendJoined(t, ev.Tags, " ")
	keys := rb.keys[:0]
	for k := range ev.OutputFields {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same event always gets the same text
	for _, k := range keys {
		t = append(append(t, '\n'), event.FieldText(ev.OutputFields[k])...)
	}
	clear(keys)
	rb.keys = keys[:0]
	t = lowerText(t)
	rb.text = t

	size := len(ev.UUID) + len(ev.Rule) + len(ev.Source) + len(ev.Hostname) + len(t)
	for _, l := range [][]string{ev.Tags, outputs} {
		for _, s := range l {
			size += len(s) + len(listSep)
		}
	}
	buf := make([]byte, 0, size)
	// field appends to buf and returns what it appended; buf never grows, so the fields
	// share its array.
	field := func(add func([]byte) []byte) []byte {
		start := len(buf)
		buf = add(buf)
		return buf[start:len(buf):len(buf)]
	}
	str := func(s string) func([]byte) []byte { return func(b []byte) []byte { return append(b, s...) } }
	list := func(l []string) func([]byte) []byte {
		return func(b []byte) []byte { return appendJoined(b, l, listSep) }
	}
	return record{UUID: field(str(ev.UUID)), Stored: stored, Priority: uint8(ev.Priority),
		Rule: field(str(ev.Rule)), Source: field(str(ev.Source)), Hostname: field(str(ev.Hostname)),
		Tags: field(list(ev.Tags)), Outputs: field(list(outputs)), JSON: ev.JSON(),
		Text: field(func(b []byte) []byte { return append(b, t...) })}
}

// appendJoined appends the elements of l separated by sep.
func appendJoined(dst []byte, l []string, sep string) []byte {
	for i, s := range l {
		if i > 0 {
			dst = append(dst, sep...)
		}
		dst = append(dst, s...)
	}
	return dst
}

// lowerText lowercases b in place when it is ASCII (the common case), else returns a
// lowercase copy.
func lowerText(b []byte) []byte {
	for i, c := range b {
		if c >= utf8.RuneSelf {
			return bytes.ToLower(b)
		}
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

// encodeBlock serializes recs with their bloom filter (nil for the open block).
// The writer's buffers are reused from block to block; only the stored value is allocated.
func (s *Store) encodeBlock(recs []record, bf *bloom.BloomFilter) ([]byte, error) {
	sc := &s.scratch
	sc.meta, sc.texts = sc.meta[:0], sc.texts[:0]
	for i := range recs {
		sc.meta = appendMeta(sc.meta, &recs[i])
		sc.texts = appendText(sc.texts, &recs[i])
	}
	var bb []byte
	if bf != nil {
		var err error
		if bb, err = bf.MarshalBinary(); err != nil {
			return nil, err
		}
	}
	sc.tf = s.enc.EncodeAll(sc.texts, sc.tf[:0])
	sc.mf = s.enc.EncodeAll(sc.meta, sc.mf[:0])
	out := make([]byte, 0, 2*binary.MaxVarintLen64+len(bb)+len(sc.tf)+len(sc.mf))
	out = binary.AppendUvarint(out, uint64(len(bb)))
	out = append(out, bb...)
	out = binary.AppendUvarint(out, uint64(len(sc.tf)))
	out = append(out, sc.tf...)
	return append(out, sc.mf...), nil
}

// seal compresses the open block. Callers hold mu.
func (s *Store) seal() {
	texts := s.scratch.textRefs[:0]
	for i := range s.open {
		texts = append(texts, s.open[i].Text)
	}
	s.scratch.textRefs = texts
	bf := newBloom(texts, &s.scratch.bloom)
	size, ok := s.writeOpen(bf)
	if !ok {
		return // the events stay in the open block; the next seal tries again
	}
	s.sealed = append(s.sealed, &block{first: s.openFirst, n: len(s.open), size: size, bloom: bf})
	s.openFirst += uint64(len(s.open))
	s.open = nil
}

// flushOpen writes the open block to the file so a crash loses at most FlushInterval of
// events. Callers hold mu.
func (s *Store) flushOpen() {
	if s.openDirty && len(s.open) > 0 && s.opts.Path != "" {
		s.writeOpen(nil)
	}
}

// writeOpen stores the open block (sealed when bf is set) under its first id, and logs a
// failure. Callers hold mu.
func (s *Store) writeOpen(bf *bloom.BloomFilter) (size int, ok bool) {
	val, err := s.encodeBlock(s.open, bf)
	if err == nil {
		err = s.blob.put(s.openFirst, val)
	}
	if err != nil {
		s.log.Error("ui store: writing a block failed", "first", s.openFirst, "events", len(s.open), "err", err)
		return 0, false
	}
	s.openDirty = false
	return len(val), true
}

// retain drops events past MaxEvents or older than MaxAge, and the blocks that hold no live
// event any more. Callers hold mu.
func (s *Store) retain() {
	drop := 0
	if max := s.opts.MaxEvents; max > 0 && len(s.entries) > max {
		drop = len(s.entries) - max
	}
	if s.opts.MaxAge > 0 {
		cut := s.now().Add(-s.opts.MaxAge).UnixMilli()
		if n := sort.Search(len(s.entries), func(i int) bool { return s.entries[i].stored >= cut }); n > drop {
			drop = n
		}
	}
	if drop == 0 {
		return
	}
	s.entries = s.entries[drop:]
	s.base += uint64(drop)
	if cap(s.entries) > 2*len(s.entries)+4096 {
		s.entries = append(make([]entry, 0, len(s.entries)+len(s.entries)/4), s.entries...)
	}
	var gone []uint64
	k := 0
	for k < len(s.sealed) && s.sealed[k].first+uint64(s.sealed[k].n) <= s.base {
		gone = append(gone, s.sealed[k].first)
		k++
	}
	if k > 0 {
		s.sealed = append(s.sealed[:0:0], s.sealed[k:]...)
		for _, g := range gone {
			s.metaCache.drop(g)
		}
		if err := s.blob.del(gone); err != nil {
			s.log.Error("ui store: deleting expired blocks failed", "err", err)
		}
	}
	if s.openFirst+uint64(len(s.open)) <= s.base && len(s.open) > 0 {
		if s.opts.Path != "" {
			if err := s.blob.del([]uint64{s.openFirst}); err != nil {
				s.log.Error("ui store: deleting expired blocks failed", "err", err)
			}
		}
		s.openFirst += uint64(len(s.open))
		s.open = nil
		s.openDirty = false
	}
}

// Close stores what is queued, writes the open block and closes the file.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.done)
	s.wg.Wait()
	s.subMu.Lock()
	for ch := range s.subs {
		close(ch)
		delete(s.subs, ch)
	}
	s.subMu.Unlock()
	s.dec.Close()
	return s.blob.close()
}

// Subscribe returns a channel receiving the Falco JSON of each event stored from now on,
// and a function to stop. A subscriber that does not keep up misses events.
func (s *Store) Subscribe() (<-chan []byte, func()) {
	ch := make(chan []byte, 64)
	s.subMu.Lock()
	if s.closed.Load() {
		close(ch)
	} else {
		s.subs[ch] = struct{}{}
	}
	s.subMu.Unlock()
	return ch, func() {
		s.subMu.Lock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
		s.subMu.Unlock()
	}
}

func (s *Store) publish(recs []record) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for ch := range s.subs {
		for i := range recs {
			select {
			case ch <- recs[i].JSON:
			default:
			}
		}
	}
}

// blockCache keeps the last decoded parts of blocks (their records or their texts).
type blockCache[T any] struct {
	mu    sync.Mutex
	max   int
	tick  uint64
	items map[uint64]*cached[T]
}

type cached[T any] struct {
	v    T
	used uint64
}

func newBlockCache[T any](max int) *blockCache[T] {
	return &blockCache[T]{max: max, items: map[uint64]*cached[T]{}}
}

func (c *blockCache[T]) get(first uint64) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.items[first]; ok {
		c.tick++
		it.used = c.tick
		return it.v, true
	}
	var zero T
	return zero, false
}

func (c *blockCache[T]) put(first uint64, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.items) >= c.max {
		var oldK uint64
		old := ^uint64(0)
		for k, it := range c.items {
			if it.used < old {
				old, oldK = it.used, k
			}
		}
		delete(c.items, oldK)
	}
	c.tick++
	c.items[first] = &cached[T]{v: v, used: c.tick}
}

func (c *blockCache[T]) drop(first uint64) {
	c.mu.Lock()
	delete(c.items, first)
	c.mu.Unlock()
}

// records returns the records (without their texts) of sealed block b. Callers hold mu (read).
func (s *Store) records(b *block) ([]record, error) {
	if recs, ok := s.metaCache.get(b.first); ok {
		return recs, nil
	}
	val, err := s.blob.get(b.first)
	if err != nil {
		return nil, err
	}
	_, _, meta, err := splitBlob(val)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", b.first, err)
	}
	recs, err := s.decodeMetaFrame(meta)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", b.first, err)
	}
	if len(recs) != b.n {
		return nil, fmt.Errorf("block %d: %d events, expected %d", b.first, len(recs), b.n)
	}
	s.metaCache.put(b.first, recs)
	return recs, nil
}

// record returns the record of event id. Callers hold mu (read).
func (s *Store) record(id uint64) (*record, error) {
	if id >= s.openFirst {
		if i := id - s.openFirst; i < uint64(len(s.open)) {
			return &s.open[i], nil
		}
		return nil, errNotFound
	}
	i := sort.Search(len(s.sealed), func(i int) bool { return s.sealed[i].first > id }) - 1
	if i < 0 {
		return nil, errNotFound
	}
	b := s.sealed[i]
	if id >= b.first+uint64(b.n) {
		return nil, errNotFound
	}
	recs, err := s.records(b)
	if err != nil {
		return nil, err
	}
	return &recs[id-b.first], nil
}

var errNotFound = errors.New("no such event")

// Stats describes the store's content.
type Stats struct {
	Events  int    `json:"events"`
	Blocks  int    `json:"blocks"`
	Dropped uint64 `json:"dropped"`
	Queued  int    `json:"queued"`
	Oldest  int64  `json:"oldest_ms,omitempty"`
	// Bytes is the size of the sealed blocks (compressed events, with their bloom filters).
	Bytes int64 `json:"bytes"`
}

// Stats returns the store's counts.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Events: len(s.entries), Blocks: len(s.sealed), Dropped: s.dropped.Load(), Queued: len(s.in)}
	if len(s.entries) > 0 {
		st.Oldest = s.entries[0].stored
	}
	for _, b := range s.sealed {
		st.Bytes += int64(b.size)
	}
	return st
}
