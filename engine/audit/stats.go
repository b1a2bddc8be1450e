package audit

import (
	"context"
	"sync/atomic"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/rules"
)

// Submitter takes an alert into the pipeline (enrichment, routing, outputs). The core
// pipeline implements it; an error means the alert was not accepted (back-pressure,
// shutdown) and the audit webhook answers 503 so the apiserver retries the batch.
type Submitter interface {
	Submit(ctx context.Context, ev *event.Event) error
}

// SubmitFunc adapts a function to Submitter.
type SubmitFunc func(ctx context.Context, ev *event.Event) error

// Submit calls f.
func (f SubmitFunc) Submit(ctx context.Context, ev *event.Event) error { return f(ctx, ev) }

// Stats counts what an audit input did. Its counters are plain atomics so a metrics
// exporter can read them without locks; the zero value is ready to use.
type Stats struct {
	// Received counts audit events parsed and evaluated against the rules.
	Received atomic.Uint64
	// Alerts counts alerts the rules produced.
	Alerts atomic.Uint64
	// Payloads counts request bodies (or JSONL lines) read.
	Payloads atomic.Uint64
	// Rejected counts whole payloads refused (bad method, content type, size, JSON).
	Rejected atomic.Uint64
	// Unavailable counts payloads answered 503 because an alert could not be stored (a full
	// queue or spool, an unreachable NATS server): the apiserver retries, then drops them.
	Unavailable atomic.Uint64

	skipped [numSkipReasons]atomic.Uint64
}

// Skipped returns how many events were skipped for reason r.
func (s *Stats) Skipped(r SkipReason) uint64 {
	if r >= numSkipReasons {
		return 0
	}
	return s.skipped[r].Load()
}

func (s *Stats) skip(r SkipReason) {
	if r < numSkipReasons {
		s.skipped[r].Add(1)
	}
}

// SkipReasons lists every reason, for exporting one counter per label value.
func SkipReasons() []SkipReason {
	return []SkipReason{SkipMalformed, SkipNotAudit, SkipBadTimestamp, SkipOversize}
}

// StatsSnapshot is a point-in-time copy of Stats.
type StatsSnapshot struct {
	Received, Alerts, Payloads, Rejected, Unavailable uint64
	Skipped                                           map[string]uint64 // by SkipReason.String()
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	snap := StatsSnapshot{Received: s.Received.Load(), Alerts: s.Alerts.Load(), Payloads: s.Payloads.Load(),
		Rejected: s.Rejected.Load(), Unavailable: s.Unavailable.Load(), Skipped: make(map[string]uint64, numSkipReasons)}
	for _, r := range SkipReasons() {
		snap.Skipped[r.String()] = s.Skipped(r)
	}
	return snap
}

// Rules is the rule engine audit events are evaluated with, swapped whole when the rule files
// are reloaded: each event is evaluated by the old rules or the new ones, never a mix.
type Rules struct{ p atomic.Pointer[rules.Engine] }

// NewRules returns a holder of e.
func NewRules(e *rules.Engine) *Rules {
	r := &Rules{}
	r.p.Store(e)
	return r
}

// Load is the current rule engine.
func (r *Rules) Load() *rules.Engine { return r.p.Load() }

// Store makes e the rule engine of the events evaluated from now on.
func (r *Rules) Store(e *rules.Engine) { r.p.Store(e) }

// worker is the per-goroutine state of evaluating payloads: a parser (with its reusable
// Event) and a rule evaluator of the current rules.
type worker struct {
	p      Parser
	rules  *Rules
	built  *rules.Engine // the engine eval belongs to
	eval   *rules.Evaluator
	alerts []*event.Event
	onAlrt func(*event.Event)
}

func newWorker(r *Rules, maxEventSize int) *worker {
	w := &worker{p: Parser{MaxEventSize: maxEventSize}, rules: r}
	w.onAlrt = func(a *event.Event) { w.alerts = append(w.alerts, a) }
	return w
}

// evaluate runs the rules on ev and returns its alerts, valid until the next call.
func (w *worker) evaluate(ev *Event, st *Stats) []*event.Event {
	w.alerts = w.alerts[:0]
	if e := w.rules.Load(); e != w.built {
		w.built, w.eval = e, e.NewEvaluator()
	}
	w.eval.Evaluate(ev, w.onAlrt)
	st.Received.Add(1)
	st.Alerts.Add(uint64(len(w.alerts)))
	return w.alerts
}
