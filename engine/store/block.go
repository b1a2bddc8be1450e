package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/cespare/xxhash/v2"
)

// record is one stored event as a block holds it: what the in-memory index is rebuilt from
// at start-up, the event's Falco JSON as the API returns it, and its lowercase search text.
// Decoded records alias the block's buffer (no allocation per field).
type record struct {
	UUID     []byte
	Stored   int64 // unix milliseconds when the store took the event
	Priority uint8
	Rule     []byte
	Source   []byte
	Hostname []byte
	Tags     []byte // joined with listSep
	Outputs  []byte // the outputs the event was queued for, joined with listSep
	JSON     []byte
	Text     []byte // lowercase rule, output, hostname, source, tags and field values
}

const listSep = "\x00"

// A block is stored as two zstd frames: the search texts, which a free-text scan reads, and
// the rest, which only the events of a page need.

// appendMeta encodes everything of r but its text, as length-prefixed fields.
func appendMeta(dst []byte, r *record) []byte {
	byt := func(b []byte) { dst = binary.AppendUvarint(dst, uint64(len(b))); dst = append(dst, b...) }
	byt(r.UUID)
	dst = binary.AppendVarint(dst, r.Stored)
	dst = append(dst, r.Priority)
	byt(r.Rule)
	byt(r.Source)
	byt(r.Hostname)
	byt(r.Tags)
	byt(r.Outputs)
	byt(r.JSON)
	return dst
}

func appendText(dst []byte, r *record) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(r.Text)))
	return append(dst, r.Text...)
}

var errCorrupt = errors.New("corrupt record")

// reader takes length-prefixed fields off buf; the first error sticks.
type reader struct {
	buf []byte
	err error
}

func (r *reader) bytes() []byte {
	if r.err != nil {
		return nil
	}
	n, k := binary.Uvarint(r.buf)
	if k <= 0 || uint64(len(r.buf)-k) < n {
		r.err = errCorrupt
		return nil
	}
	b := r.buf[k : k+int(n) : k+int(n)]
	r.buf = r.buf[k+int(n):]
	return b
}

// decodeMeta parses a block's meta frame.
func decodeMeta(buf []byte) ([]record, error) {
	var out []record
	rd := &reader{buf: buf}
	for len(rd.buf) > 0 && rd.err == nil {
		var r record
		r.UUID = rd.bytes()
		if rd.err == nil {
			v, k := binary.Varint(rd.buf)
			if k <= 0 || len(rd.buf) < k+1 {
				rd.err = errCorrupt
				break
			}
			r.Stored, r.Priority = v, rd.buf[k]
			rd.buf = rd.buf[k+1:]
		}
		r.Rule = rd.bytes()
		r.Source = rd.bytes()
		r.Hostname = rd.bytes()
		r.Tags = rd.bytes()
		r.Outputs = rd.bytes()
		r.JSON = rd.bytes()
		if rd.err == nil {
			out = append(out, r)
		}
	}
	if rd.err != nil {
		return out, fmt.Errorf("record %d: %w", len(out), rd.err)
	}
	return out, nil
}

// decodeTexts parses a block's text frame, appending to out.
func decodeTexts(buf []byte, out [][]byte) ([][]byte, error) {
	rd := &reader{buf: buf}
	for len(rd.buf) > 0 {
		t := rd.bytes()
		if rd.err != nil {
			return out, fmt.Errorf("text %d: %w", len(out), rd.err)
		}
		out = append(out, t)
	}
	return out, nil
}

func splitList(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), listSep)
}

// Words of the search text are runs of letters and digits. The bloom filter of a sealed
// block holds the prefixes of its words at these lengths, so a query word of at least 3
// characters skips the blocks that cannot hold a word starting with it.
var prefixLens = [...]int{3, 4, 6, 8, 12}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// asciiWord marks the ASCII letters and digits.
var asciiWord = func() (t [128]bool) {
	for c := range t {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	return t
}()

// words calls fn with each word of lowercase text.
func words(text []byte, fn func(w []byte)) {
	start := -1
	for i := 0; i < len(text); {
		var word bool
		size := 1
		if c := text[i]; c < utf8.RuneSelf {
			word = asciiWord[c]
		} else {
			var r rune
			r, size = utf8.DecodeRune(text[i:])
			word = isWordRune(r)
		}
		if word {
			if start < 0 {
				start = i
			}
		} else if start >= 0 {
			fn(text[start:i])
			start = -1
		}
		i += size
	}
	if start >= 0 {
		fn(text[start:])
	}
}

// indexedPrefix is the longest indexed prefix of query word w, or nil when w is too short
// for the bloom filters to help.
func indexedPrefix(w []byte) []byte {
	var best []byte
	for _, l := range prefixLens {
		if len(w) >= l {
			best = w[:l]
		}
	}
	return best
}

// pairKey is the bloom filter key of two adjacent words: the first (up to 12 bytes) and
// the start of the second, so a term such as nginx-7d9f8 or user=root skips the blocks where
// its words never follow each other.
func pairKey(dst, w1, w2 []byte) []byte {
	dst = append(dst[:0], 1)
	dst = append(dst, w1[:min(len(w1), 12)]...)
	dst = append(dst, 1)
	return append(dst, w2[:3]...)
}

// Bloom filter keys are added and tested as the 8 bytes of their xxhash: building a block's
// filter then needs no allocation per key (it runs on the store's ingest path).
func keyHash(key []byte) []byte {
	x := xxhash.Sum64(key)
	if x == 0 {
		x = 1 // as hashSet stores it
	}
	return binary.LittleEndian.AppendUint64(make([]byte, 0, 8), x)
}

// hashSet is an open-addressing set of key hashes, reused from block to block: deduplicating
// a block's keys (tens of thousands, mostly repeated) by sorting them cost a quarter of the
// store's ingest CPU.
type hashSet struct {
	slots []uint64 // 0: empty (a zero hash is stored as 1)
	n     int
}

func (h *hashSet) reset(keys int) {
	size := 1024
	for size < 2*keys {
		size <<= 1
	}
	if cap(h.slots) >= size {
		h.slots = h.slots[:size]
		clear(h.slots)
	} else {
		h.slots = make([]uint64, size)
	}
	h.n = 0
}

// add adds x and reports whether it was new.
func (h *hashSet) add(x uint64) bool {
	if x == 0 {
		x = 1
	}
	mask := uint64(len(h.slots) - 1)
	for i := x & mask; ; i = (i + 1) & mask {
		switch h.slots[i] {
		case x:
			return false
		case 0:
			h.slots[i] = x
			h.n++
			if 2*h.n > len(h.slots) { // keep probes short: grow
				old := h.slots
				h.slots = make([]uint64, 2*len(old))
				h.n = 0
				for _, v := range old {
					if v != 0 {
						h.add(v)
					}
				}
			}
			return true
		}
	}
}

// bloomScratch is newBloom's reusable memory.
type bloomScratch struct {
	keys hashSet // the filter's keys' hashes
	seen hashSet // the words and word pairs already keyed
}

// newBloom builds the bloom filter of the texts' word prefixes and adjacent word pairs.
// The texts of a block repeat most of their words (rule names, output templates, hosts), so
// a word or a pair of words already seen in the block is not keyed again: hashing every
// prefix of every occurrence was most of the filter's cost, on the writer's CPU budget.
func newBloom(texts [][]byte, sc *bloomScratch) *bloom.BloomFilter {
	set, seen := &sc.keys, &sc.seen
	set.reset(len(texts) * 32)
	seen.reset(len(texts) * 32)
	var key []byte
	for _, t := range texts {
		var prev []byte
		var prevHash uint64
		words(t, func(w []byte) {
			h := xxhash.Sum64(w)
			if seen.add(h) {
				for _, l := range prefixLens {
					if len(w) < l {
						break
					}
					if l == len(w) {
						set.add(h)
					} else {
						set.add(xxhash.Sum64(w[:l]))
					}
				}
			}
			// The pair's key depends only on the two words: once keyed, it is in the set.
			if prev != nil && len(w) >= 3 && seen.add(prevHash*0x9e3779b97f4a7c15^bits.RotateLeft64(h, 29)) {
				key = pairKey(key, prev, w)
				set.add(xxhash.Sum64(key))
			}
			prev, prevHash = w, h
		})
	}
	f := bloom.NewWithEstimates(uint(max(set.n, 16)), 0.02)
	var b [8]byte
	for _, x := range set.slots {
		if x != 0 {
			binary.LittleEndian.PutUint64(b[:], x)
			f.Add(b[:])
		}
	}
	return f
}

// matchText reports whether every query term appears in text (lowercase), starting a word.
func matchText(text []byte, terms [][]byte) bool {
	for _, q := range terms {
		if !hasWordPrefix(text, q) {
			return false
		}
	}
	return true
}

// hasWordPrefix reports whether q appears in text where a word starts (or anywhere, when q
// itself starts with punctuation, as /bin/hack).
func hasWordPrefix(text, q []byte) bool {
	first, _ := utf8.DecodeRune(q)
	anywhere := !isWordRune(first)
	for off := 0; off+len(q) <= len(text); {
		i := bytes.Index(text[off:], q)
		if i < 0 {
			return false
		}
		at := off + i
		if anywhere || at == 0 {
			return true
		}
		r, _ := utf8.DecodeLastRune(text[:at])
		if !isWordRune(r) {
			return true
		}
		off = at + 1
	}
	return false
}

// queryTerms splits a free-text filter at blanks into lowercase terms. A term is matched as
// written, punctuation included: nginx-7d9f8 must appear as such, not as nginx and 7d9f8
// anywhere in the event.
func queryTerms(s string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(strings.ToLower(s)) {
		out = append(out, []byte(f))
	}
	return out
}

// termPrefixes are the bloom filter keys (hashed) of the terms: the indexed prefixes of their words
// and their adjacent word pairs (the first word of a pair is whole: punctuation follows it).
// A block whose filter lacks one cannot match.
func termPrefixes(terms [][]byte) [][]byte {
	var out [][]byte
	for _, t := range terms {
		var prev []byte
		words(t, func(w []byte) {
			if p := indexedPrefix(w); p != nil {
				out = append(out, keyHash(p))
			}
			if prev != nil && len(w) >= 3 {
				out = append(out, keyHash(pairKey(nil, prev, w)))
			}
			prev = w
		})
	}
	return out
}
