package delivery

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"text/template"
	"time"

	"golang.org/x/time/rate"

	"github.com/saker-dev/saker/engine/alertfilter"
	"github.com/saker-dev/saker/engine/event"
)

// TestRule is the rule name of POST /test events: they reach every output whatever its
// minimumpriority, filter or dedup window.
const TestRule = "Test rule"

// SuppressedField is the output field telling, on the first alert sent after a dedup window,
// how many identical alerts the window suppressed; SuppressedWindowField is that window
// ("30s"), for chat outputs to say "(12 similar alerts suppressed within 30s of the
// previous one)".
const (
	SuppressedField       = "saker.suppressed"
	SuppressedWindowField = "saker.suppressed_window"
)

// MarkSuppressed returns a copy of ev telling that n identical alerts were suppressed within
// window after the previous one: a copy, since ev is shared with the other outputs.
func MarkSuppressed(ev *event.Event, n int, window time.Duration) *event.Event {
	c := ev.Clone()
	c.OutputFields[SuppressedField] = n
	c.OutputFields[SuppressedWindowField] = window.String()
	return c
}

// deduper remembers, per key, when an alert was last sent and how many identical ones were
// suppressed since.
type deduper struct {
	window time.Duration
	key    *template.Template // nil: rule and output text
	now    func() time.Time

	mu        sync.Mutex
	seen      map[string]*dedupEntry
	lastSweep time.Time
}

type dedupEntry struct {
	sent       time.Time
	suppressed int
}

// newDeduper returns nil when the window is off; the error is an invalid key template.
func newDeduper(p DedupPolicy) (*deduper, error) {
	var tmpl *template.Template
	if p.Key != "" {
		var err error
		if tmpl, err = template.New("dedup.key").Option("missingkey=zero").Parse(p.Key); err != nil {
			return nil, err
		}
	}
	if p.Window <= 0 {
		return nil, nil
	}
	return &deduper{window: p.Window, key: tmpl, now: time.Now, seen: map[string]*dedupEntry{}}, nil
}

// keyOf is the identity of an alert. The default is the rule, the priority and the output
// text without the leading timestamp of Falco's output line ("16:31:56.746609046: Error
// ..."), which differs between otherwise identical alerts.
func (d *deduper) keyOf(ev *event.Event) string {
	if d.key == nil {
		return ev.Rule + "\x00" + ev.Priority.String() + "\x00" + stripTimestamp(ev.Output)
	}
	var b strings.Builder
	if err := d.key.Execute(&b, ev); err != nil {
		// A key that cannot be computed for this event: never suppress it.
		return "\x00error\x00" + ev.UUID
	}
	return b.String()
}

// stripTimestamp removes a leading "time: " prefix made of digits and time punctuation.
func stripTimestamp(s string) string {
	i := strings.Index(s, ": ")
	if i <= 0 || i > 40 {
		return s
	}
	for _, c := range s[:i] {
		if !(c >= '0' && c <= '9' || strings.ContainsRune(":.-+TZ ", c)) {
			return s
		}
	}
	return s[i+2:]
}

// check reports whether ev is a duplicate to suppress; when it is not, suppressed is how
// many duplicates of it the previous window suppressed.
func (d *deduper) check(ev *event.Event) (duplicate bool, suppressed int) {
	k := d.keyOf(ev)
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.lastSweep) >= d.window {
		for key, e := range d.seen {
			if now.Sub(e.sent) >= d.window && e.suppressed == 0 {
				delete(d.seen, key)
			}
		}
		d.lastSweep = now
	}
	e := d.seen[k]
	if e != nil && now.Sub(e.sent) < d.window {
		e.suppressed++
		return true, 0
	}
	if e == nil {
		e = &dedupEntry{}
		d.seen[k] = e
	}
	suppressed = e.suppressed
	e.sent, e.suppressed = now, 0
	return false, suppressed
}

// annotated is a delivery whose event carries the suppressed count: a copy, since the
// original is shared with the other outputs.
type annotated struct {
	Delivery
	ev *event.Event
}

func (a annotated) Event() *event.Event { return a.ev }

// pacer is an output's rate limit. Only one worker at a time waits for a token and then
// for an event (gate), so the excess stays queued rather than held by idle workers.
type pacer struct {
	limiter *rate.Limiter
	gate    chan struct{}
}

func newPacer(p RateLimitPolicy) *pacer {
	if p.Rate <= 0 {
		return nil
	}
	burst := max(p.Burst, 1)
	return &pacer{limiter: rate.NewLimiter(rate.Limit(p.Rate), burst), gate: make(chan struct{}, 1)}
}

// control is an output's routing and noise control, compiled from its Policy's Control.
type control struct {
	policy  Control
	minPrio event.Priority
	filter  *alertfilter.Filter // nil: every event
	dedup   *deduper            // nil: no dedup window
	pacer   *pacer              // nil: no rate limit
}

// Prepared is a validated Policy with its routing and noise control compiled: what loading a
// configuration checks (config check, start-up, a reload) and what the engine then runs
// with, so a filter or dedup key is compiled once.
type Prepared struct {
	policy Policy
	ctl    *control
}

// Policy is the policy p was prepared from.
func (p *Prepared) Policy() Policy { return p.policy }

// Prepare validates p and compiles its filter and dedup key; errors name the key under
// prefix, the output's key path ("" for the top level).
func Prepare(prefix string, p Policy) (*Prepared, error) {
	if err := p.Validate(prefix); err != nil {
		return nil, err
	}
	prio, err := event.ParsePriority(p.MinimumPriority)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath(prefix, "minimumpriority"), err)
	}
	c := &control{policy: p.Control, minPrio: prio, pacer: newPacer(p.RateLimit)}
	if p.Filter != "" {
		if c.filter, err = alertfilter.Compile(p.Filter); err != nil {
			return nil, fmt.Errorf("%s: %w", keyPath(prefix, "filter"), err)
		}
	}
	if c.dedup, err = newDeduper(p.Dedup); err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath(prefix, "dedup.key"), err)
	}
	return &Prepared{policy: p, ctl: c}, nil
}

// carryOver is c keeping what prev already runs with the same settings: the dedup window's
// memory and the rate limiter's tokens survive a reconfiguration that does not change them.
func (c *control) carryOver(prev *control) *control {
	n := *c
	if prev != nil && prev.policy.Dedup == c.policy.Dedup {
		n.dedup = prev.dedup
	}
	if prev != nil && prev.policy.RateLimit == c.policy.RateLimit {
		n.pacer = prev.pacer
	}
	return &n
}

// Reconfigure applies p's Control (minimumpriority, filter, dedup, ratelimit) to a running
// output; the rest of p is ignored (Replace applies it). Events already queued stay queued.
func (e *Engine) Reconfigure(name string, p *Prepared) error {
	r := e.runner(name)
	if r == nil {
		return fmt.Errorf("output %s is not running", name)
	}
	r.ctl.Store(p.ctl.carryOver(r.ctl.Load()))
	return nil
}

// receive takes the output's next delivery under its rate limit and dedup window: suppressed
// duplicates are settled here and counted, filtered events never reached the queue (Route).
func (e *Engine) receive(ctx context.Context, r *runner) (Delivery, error) {
	ctl := r.ctl.Load()
	// waited is counted once an event comes: a worker paces itself before it takes the next
	// event, and the wait of one for which none came (yet) limited nothing.
	waited := false
	if pc := ctl.pacer; pc != nil {
		select {
		case pc.gate <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-pc.gate }()
		res := pc.limiter.Reserve()
		if wait := res.Delay(); wait > 0 {
			// Waiting before taking the event leaves it in the queue (and in queue_depth).
			waited = true
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				res.Cancel()
				return nil, ctx.Err()
			}
		}
	}
	for {
		d, err := e.bus.Receive(ctx, r.name)
		if err == nil && waited {
			waited = false
			r.rateLimited.Inc()
			r.rateLimitedN.Add(1)
		}
		if err != nil || ctl.dedup == nil {
			return d, err
		}
		ev := d.Event()
		if ev.Rule == TestRule {
			return d, nil
		}
		dup, suppressed := ctl.dedup.check(ev)
		if dup {
			r.suppressed.Inc()
			r.suppressedN.Add(1)
			d.Done()
			continue
		}
		if suppressed > 0 {
			return annotated{Delivery: d, ev: MarkSuppressed(ev, suppressed, ctl.dedup.window)}, nil
		}
		return d, nil
	}
}
