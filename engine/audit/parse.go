package audit

import (
	"errors"
	"fmt"
)

// DefaultMaxEventSize is the default per-event size cap (k8saudit.maxeventsize).
const DefaultMaxEventSize = 256 << 10

// SkipReason says why an audit event was not evaluated.
type SkipReason uint8

// Skip reasons, also the label values of the skipped-events counter.
const (
	SkipMalformed    SkipReason = iota // not valid JSON
	SkipNotAudit                       // valid JSON, but not an audit Event
	SkipBadTimestamp                   // no readable stageTimestamp
	SkipOversize                       // larger than the per-event cap
	numSkipReasons
)

func (r SkipReason) String() string {
	switch r {
	case SkipMalformed:
		return "malformed"
	case SkipNotAudit:
		return "not_audit_event"
	case SkipBadTimestamp:
		return "bad_timestamp"
	case SkipOversize:
		return "oversize"
	}
	return fmt.Sprintf("SkipReason(%d)", uint8(r))
}

// ItemError is one item of a payload that was skipped. Item is its position among the
// payload's events (0-based, in document order) and Offset its byte offset in the payload.
type ItemError struct {
	Item   int
	Offset int
	Reason SkipReason
	Err    error
}

func (e *ItemError) Error() string {
	return fmt.Sprintf("item %d at offset %d skipped (%s): %v", e.Item, e.Offset, e.Reason, e.Err)
}

func (e *ItemError) Unwrap() error { return e.Err }

// Parser splits payloads into audit events: an audit.k8s.io Event, an EventList (what the
// apiserver's webhook batch mode sends) or a JSON array of either, as Falco's k8saudit
// plugin accepts. It reuses one Event for every item, so the whole walk allocates nothing
// once warm. A Parser is not safe for concurrent use.
type Parser struct {
	// MaxEventSize caps one event's JSON size in bytes; 0 means DefaultMaxEventSize.
	MaxEventSize int

	ev   Event
	item int
}

// Parse calls yield for every audit event of payload, in order. The *Event passed to
// yield is only valid during the call. A payload that is not valid JSON returns a
// *SyntaxError and yields nothing; a valid payload that is not an audit payload at all
// returns ErrNotAuditEvent. An item that cannot be used (not an object, no readable
// stageTimestamp, too large) is reported to skip, when not nil, and the walk goes on.
// An error returned by yield stops the walk and is returned.
func (p *Parser) Parse(payload []byte, yield func(*Event) error, skip func(*ItemError)) error {
	p.item = 0
	i := skipSpace(payload, 0)
	if i < len(payload) && payload[i] == '{' {
		// The common case, one Event per payload (a JSONL line): validate and index in
		// one pass.
		ev := &p.ev
		ev.clear()
		end, err := ev.indexObject(payload, i, true)
		if err != nil {
			return err
		}
		if j := skipSpace(payload, end); j != len(payload) {
			return syntaxErr(payload, j, "end of input")
		}
		ev.raw = payload[i:end]
		ev.rebase(i)
		return p.object(payload, span{i, end}, true, yield, skip)
	}
	end, err := validate(payload, i, 0)
	if err != nil {
		return err
	}
	if j := skipSpace(payload, end); j != len(payload) {
		return syntaxErr(payload, j, "end of input")
	}
	if payload[i] != '[' {
		return ErrNotAuditEvent
	}
	return p.array(payload, span{i, end}, yield, skip)
}

func (ev *Event) rebase(off int) {
	if off == 0 {
		return
	}
	for _, ms := range [][]member{ev.top, ev.sub} {
		for k := range ms {
			m := &ms[k]
			m.k0 -= int32(off)
			m.k1 -= int32(off)
			m.v0 -= int32(off)
			m.v1 -= int32(off)
		}
	}
}

// object handles an Event or EventList object at v; indexed says p.ev already indexes it.
func (p *Parser) object(b []byte, v span, indexed bool, yield func(*Event) error, skip func(*ItemError)) error {
	ev := &p.ev
	if !indexed {
		ev.clear()
		if _, err := ev.indexObject(b[v.s:v.e], 0, false); err != nil {
			return err
		}
		ev.raw = b[v.s:v.e]
	}
	k, ok := ev.topGet("kind")
	kind, isStr := "", false
	if ok {
		kind, isStr = ev.rawString(k)
	}
	if !isStr {
		return ErrNotAuditEvent
	}
	switch kind {
	case "Event":
		return p.event(b, v, true, yield, skip)
	case "EventList":
		items, ok := ev.topGet("items")
		if !ok || ev.kind(items) != '[' {
			return ErrNotAuditEvent
		}
		items.s += v.s
		items.e += v.s
		it := newArrIter(b, items)
		for it.next() {
			if err := p.event(b, it.val, false, yield, skip); err != nil {
				return err
			}
		}
		return nil
	}
	return ErrNotAuditEvent
}

// array handles a JSON array of Events, EventLists and arrays: an element that is not an
// audit payload is skipped, not fatal.
func (p *Parser) array(b []byte, v span, yield func(*Event) error, skip func(*ItemError)) error {
	it := newArrIter(b, v)
	for it.next() {
		el := it.val
		var err error
		switch b[el.s] {
		case '[':
			err = p.array(b, el, yield, skip)
		case '{':
			err = p.object(b, el, false, yield, skip)
		default:
			err = ErrNotAuditEvent
		}
		if errors.Is(err, ErrNotAuditEvent) {
			p.report(skip, el.s, SkipNotAudit, err)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// event yields the event at v (indexed says p.ev already indexes it).
func (p *Parser) event(b []byte, v span, indexed bool, yield func(*Event) error, skip func(*ItemError)) error {
	maxSize := p.MaxEventSize
	if maxSize <= 0 {
		maxSize = DefaultMaxEventSize
	}
	if v.e-v.s > maxSize {
		p.report(skip, v.s, SkipOversize, fmt.Errorf("event of %d bytes is larger than the %d bytes cap", v.e-v.s, maxSize))
		return nil
	}
	if b[v.s] != '{' {
		p.report(skip, v.s, SkipNotAudit, fmt.Errorf("%w: got a JSON %s, not an object", ErrNotAuditEvent, describeByte(b[v.s])))
		return nil
	}
	ev := &p.ev
	if !indexed {
		ev.clear()
		if _, err := ev.indexObject(b[v.s:v.e], 0, false); err != nil {
			p.report(skip, v.s, SkipMalformed, err)
			return nil
		}
		ev.raw = b[v.s:v.e]
	}
	if err := ev.readTime(); err != nil {
		p.report(skip, v.s, SkipBadTimestamp, err)
		return nil
	}
	p.item++
	return yield(ev)
}

func (p *Parser) report(skip func(*ItemError), off int, r SkipReason, err error) {
	item := p.item
	p.item++
	if skip != nil {
		skip(&ItemError{Item: item, Offset: off, Reason: r, Err: err})
	}
}
