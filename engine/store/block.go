package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bits-and-blooms/bloom/v3"
)

// record is one stored event as a block holds it: what the in-memory index is rebuilt from
// at start-up, the event's Falco JSON as the API returns it, and its lowercase search text.
type record struct {
	UUID     string
	Stored   int64 // unix milliseconds when the store took the event
	Priority uint8
	Rule     string
	Source   string
	Hostname string
	Tags     []string
	Outputs  []string // the outputs the event was queued for
	JSON     []byte
	Text     []byte // lowercase rule, output, hostname, source, tags and field values
}

const listSep = "\x00"

// appendRecord encodes r as length-prefixed fields.
func appendRecord(dst []byte, r *record) []byte {
	str := func(s string) { dst = binary.AppendUvarint(dst, uint64(len(s))); dst = append(dst, s...) }
	byt := func(b []byte) { dst = binary.AppendUvarint(dst, uint64(len(b))); dst = append(dst, b...) }
	str(r.UUID)
	dst = binary.AppendVarint(dst, r.Stored)
	dst = append(dst, r.Priority)
	str(r.Rule)
	str(r.Source)
	str(r.Hostname)
	str(strings.Join(r.Tags, listSep))
	str(strings.Join(r.Outputs, listSep))
	byt(r.JSON)
	byt(r.Text)
	return dst
}

var errCorrupt = errors.New("corrupt record")

// decodeRecords parses a block's records. The strings and byte slices alias buf.
func decodeRecords(buf []byte) ([]record, error) {
	var out []record
	for len(buf) > 0 {
		var r record
		var err error
		next := func() []byte {
			if err != nil {
				return nil
			}
			n, k := binary.Uvarint(buf)
			if k <= 0 || uint64(len(buf)-k) < n {
				err = errCorrupt
				return nil
			}
			b := buf[k : k+int(n)]
			buf = buf[k+int(n):]
			return b
		}
		r.UUID = string(next())
		if err == nil {
			v, k := binary.Varint(buf)
			if k <= 0 || len(buf) < k+1 {
				return out, fmt.Errorf("record %d: %w", len(out), errCorrupt)
			}
			r.Stored = v
			r.Priority = buf[k]
			buf = buf[k+1:]
		}
		r.Rule = string(next())
		r.Source = string(next())
		r.Hostname = string(next())
		r.Tags = splitList(string(next()))
		r.Outputs = splitList(string(next()))
		r.JSON = next()
		r.Text = next()
		if err != nil {
			return out, fmt.Errorf("record %d: %w", len(out), err)
		}
		out = append(out, r)
	}
	return out, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, listSep)
}

// Words of the search text are runs of letters and digits. The bloom filter of a sealed
// block holds the prefixes of its words at these lengths, so a query word of at least
// minPrefix characters skips the blocks that cannot hold a word starting with it.
var prefixLens = [...]int{3, 4, 6, 8, 12}

const minPrefix = 3

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// words calls fn with each word of lowercase text.
func words(text []byte, fn func(w []byte)) {
	start := -1
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRune(text[i:])
		if isWordRune(r) {
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

// newBloom builds the bloom filter of the records' word prefixes.
func newBloom(recs []record) *bloom.BloomFilter {
	seen := map[string]struct{}{}
	for i := range recs {
		words(recs[i].Text, func(w []byte) {
			for _, l := range prefixLens {
				if len(w) < l {
					break
				}
				seen[string(w[:l])] = struct{}{}
			}
		})
	}
	n := uint(len(seen))
	if n < 16 {
		n = 16
	}
	f := bloom.NewWithEstimates(n, 0.02)
	for k := range seen {
		f.AddString(k)
	}
	return f
}

// matchText reports whether every query word is the start of a word of text (lowercase).
func matchText(text []byte, query [][]byte) bool {
	for _, q := range query {
		if !hasWordPrefix(text, q) {
			return false
		}
	}
	return true
}

func hasWordPrefix(text, q []byte) bool {
	for off := 0; off+len(q) <= len(text); {
		i := bytes.Index(text[off:], q)
		if i < 0 {
			return false
		}
		at := off + i
		if at == 0 {
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

// queryWords splits a free-text filter into lowercase words.
func queryWords(s string) [][]byte {
	var out [][]byte
	words([]byte(strings.ToLower(s)), func(w []byte) { out = append(out, append([]byte(nil), w...)) })
	return out
}
