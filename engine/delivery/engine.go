package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
)

// Engine runs every output's workers over a Bus and applies the shared policies: per-attempt
// timeout, retry with backoff, batching, dead-lettering and the delivery metrics.
type Engine struct {
	bus     Bus
	metrics *metrics.Metrics
	dead    *DeadLetter // nil: dead events are only counted and logged
	log     *slog.Logger

	outputs []*runner
	byName  map[string]*runner

	cancel context.CancelFunc
	wg     sync.WaitGroup // the workers
	gwg    sync.WaitGroup // the gauge refresher, which runs until cancel
	// shutdownLost counts events given up with reason "shutdown", for Stop's report.
	shutdownLost atomic.Int64
}

// runner is one output with its policy and state.
type runner struct {
	out      Output
	policy   Policy
	minPrio  event.Priority
	inflight atomic.Int64

	// The output's metric children, looked up once: label hashing on every event is
	// measurable at tens of thousands of events per second.
	okCount, errCount prometheus.Counter
	retries           prometheus.Counter
	latency           prometheus.Observer

	mu          sync.Mutex
	lastError   string
	lastErrorAt time.Time
	lastOK      time.Time
	delivered   uint64
	failed      uint64
}

// NewEngine returns an engine on bus. dead may be nil.
func NewEngine(bus Bus, m *metrics.Metrics, dead *DeadLetter, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.Default()
	}
	if m == nil {
		m = metrics.New(0)
	}
	e := &Engine{bus: bus, metrics: m, dead: dead, log: log, byName: map[string]*runner{}}
	if mb, ok := bus.(*MemoryBus); ok {
		mb.OnDrop = func(output string, ev *event.Event) {
			e.settleFailed(e.byName[output], ev, "queue_full", errors.New("evicted by whenfull=dropoldest"), 0)
		}
	}
	return e
}

// Add registers an output with its policy. Outputs must be added before Start.
func (e *Engine) Add(out Output, p Policy) error {
	if err := p.Validate(out.Name()); err != nil {
		return err
	}
	_, isSender := out.(Sender)
	_, isBatch := out.(BatchSender)
	if !isSender && !isBatch {
		return fmt.Errorf("output %s implements neither Send nor SendBatch", out.Name())
	}
	prio, err := event.ParsePriority(p.MinimumPriority)
	if err != nil {
		return fmt.Errorf("%s.minimumpriority: %w", out.Name(), err)
	}
	if _, dup := e.byName[out.Name()]; dup {
		return fmt.Errorf("output %s configured twice", out.Name())
	}
	if err := e.bus.AddOutput(out.Name(), p); err != nil {
		return err
	}
	name := out.Name()
	r := &runner{out: out, policy: p, minPrio: prio,
		okCount: e.metrics.Outputs.WithLabelValues(name, "ok"), errCount: e.metrics.Outputs.WithLabelValues(name, "error"),
		retries: e.metrics.Retries.WithLabelValues(name), latency: e.metrics.Latency.WithLabelValues(name)}
	e.outputs = append(e.outputs, r)
	e.byName[out.Name()] = r
	e.metrics.QueueCap.WithLabelValues(out.Name()).Set(float64(p.QueueSize))
	e.metrics.QueueDepth.WithLabelValues(out.Name()).Set(0)
	e.metrics.InFlight.WithLabelValues(out.Name()).Set(0)
	return nil
}

// Outputs lists the names of the registered outputs, in registration order.
func (e *Engine) Outputs() []string {
	names := make([]string, len(e.outputs))
	for i, r := range e.outputs {
		names[i] = r.out.Name()
	}
	return names
}

// Has reports whether an output of that name is registered.
func (e *Engine) Has(name string) bool { _, ok := e.byName[name]; return ok }

// Route returns the outputs ev should go to: those whose minimumpriority it meets, restricted
// to only when only is not empty.
func (e *Engine) Route(ev *event.Event, only string) []string {
	var names []string
	for _, r := range e.outputs {
		if only != "" && r.out.Name() != only {
			continue
		}
		if ev.Priority >= r.minPrio {
			names = append(names, r.out.Name())
		}
	}
	return names
}

// Publish queues ev for the named outputs and counts drops the bus reports.
func (e *Engine) Publish(ctx context.Context, ev *event.Event, outputs []string) (PublishResult, error) {
	res, err := e.bus.Publish(ctx, ev, outputs)
	if err != nil {
		var full *FullError
		if errors.As(err, &full) {
			e.metrics.Dropped.WithLabelValues(full.Output, "queue_full_rejected").Inc()
		}
		return res, err
	}
	for _, name := range res.DroppedNewest {
		e.settleFailed(e.byName[name], ev, "queue_full", errors.New("queue full, whenfull=dropnewest"), 0)
	}
	return res, nil
}

// Start launches each output's workers.
func (e *Engine) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for _, r := range e.outputs {
		for i := 0; i < r.policy.MaxConcurrentRequests; i++ {
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				e.work(ctx, r)
			}()
		}
	}
	e.gwg.Add(1)
	go func() {
		defer e.gwg.Done()
		e.gauges(ctx)
	}()
}

// gauges refreshes queue depth and in-flight gauges.
func (e *Engine) gauges(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for _, r := range e.outputs {
			e.metrics.QueueDepth.WithLabelValues(r.out.Name()).Set(float64(e.bus.Depth(r.out.Name())))
			e.metrics.InFlight.WithLabelValues(r.out.Name()).Set(float64(r.inflight.Load()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stopGrace is how long Stop waits, after cancelling, for sends that ignore their context.
var stopGrace = 2 * time.Second

// Stop closes the bus, lets the workers drain the queues for up to timeout, then cancels
// what is still in flight: those events, and any left queued, are dead-lettered (when
// configured) and counted as dropped with reason "shutdown". It reports how many were lost.
// Stop must follow Start.
func (e *Engine) Stop(timeout time.Duration) int {
	e.bus.Close()
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		e.log.Warn("shutdown timeout reached with deliveries pending; giving up on them", "timeout", timeout)
		e.cancel()
		// An output that ignores its context cannot hold the process hostage: after a
		// grace period its worker is abandoned (its event is neither delivered nor counted).
		grace := time.NewTimer(stopGrace)
		defer grace.Stop()
		select {
		case <-done:
		case <-grace.C:
			e.log.Error("an output did not return after its context was cancelled; abandoning it", "grace", stopGrace)
		}
	}
	e.cancel()
	e.gwg.Wait()
	for _, r := range e.outputs {
		for {
			d, err := e.bus.Receive(context.Background(), r.out.Name())
			if err != nil {
				break
			}
			e.settleFailed(r, d.Event(), "shutdown", errors.New("still queued at shutdown"), 0)
			d.Done()
		}
		if c, ok := r.out.(Closer); ok {
			if err := c.Close(); err != nil {
				e.log.Warn("closing output", "output", r.out.Name(), "err", err)
			}
		}
	}
	if e.dead != nil {
		if err := e.dead.Close(); err != nil {
			e.log.Error("closing dead-letter file", "err", err)
		}
	}
	return int(e.shutdownLost.Load())
}

// work is one worker's loop: take events (a batch when batching), deliver, repeat.
func (e *Engine) work(ctx context.Context, r *runner) {
	batcher, batching := r.out.(BatchSender)
	maxEvents := r.policy.Batch.MaxEvents
	if !batching || maxEvents <= 1 {
		batching = false
	}
	var next Delivery // received but left out of the last batch by batch.maxbytes
	for {
		d := next
		next = nil
		if d == nil {
			// Once cancelled (shutdown timeout), leave what is queued to Stop: an attempt
			// with a dead context would only fail.
			if ctx.Err() != nil {
				return
			}
			var err error
			if d, err = e.bus.Receive(ctx, r.out.Name()); err != nil {
				return
			}
		}
		if !batching {
			e.deliver(ctx, r, []Delivery{d}, func(actx context.Context, evs []*event.Event) error {
				return r.out.(Sender).Send(actx, evs[0])
			})
			continue
		}
		var batch []Delivery
		batch, next = e.collect(ctx, r, d, maxEvents)
		e.deliver(ctx, r, batch, batcher.SendBatch)
	}
}

// collect gathers up to maxEvents deliveries whose JSON adds up to at most batch.maxbytes
// (a single larger event goes alone), waiting at most the flush interval after the first one.
// A delivery that would overflow maxbytes is returned as next, to start the next batch.
func (e *Engine) collect(ctx context.Context, r *runner, first Delivery, maxEvents int) (batch []Delivery, next Delivery) {
	batch = []Delivery{first}
	size := len(first.Event().JSON())
	maxBytes := r.policy.Batch.MaxBytes
	flush := r.policy.Batch.FlushInterval
	if flush <= 0 {
		flush = time.Second
	}
	fctx, cancel := context.WithTimeout(ctx, flush)
	defer cancel()
	for len(batch) < maxEvents && (maxBytes <= 0 || size < maxBytes) {
		d, err := e.bus.Receive(fctx, r.out.Name())
		if err != nil {
			break
		}
		n := len(d.Event().JSON())
		if maxBytes > 0 && size+n > maxBytes {
			return batch, d
		}
		batch = append(batch, d)
		size += n
	}
	return batch, nil
}

// sendFunc sends a non-empty slice of events.
type sendFunc func(ctx context.Context, evs []*event.Event) error

// deliver sends the deliveries' events with retries until each is delivered or given up.
func (e *Engine) deliver(ctx context.Context, r *runner, ds []Delivery, send sendFunc) {
	name := r.out.Name()
	n := int64(len(ds))
	r.inflight.Add(n)
	defer r.inflight.Add(-n)
	defer func() {
		for _, d := range ds {
			d.Done()
		}
	}()
	pending := make([]*event.Event, len(ds))
	for i, d := range ds {
		pending[i] = d.Event()
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			r.retries.Add(float64(len(pending)))
		}
		actx, cancel := context.WithTimeout(ctx, r.policy.Timeout)
		err := send(actx, pending)
		cancel()
		var failed []*event.Event
		var failErrs []error
		var batchErr *BatchError
		switch {
		case err == nil:
		case errors.As(err, &batchErr):
			for i, ev := range pending {
				if ferr, bad := batchErr.Failed[i]; bad {
					failed = append(failed, ev)
					failErrs = append(failErrs, ferr)
				}
			}
			if len(failed) > 0 {
				err = failErrs[0]
			} else {
				err = nil
			}
		default:
			failed = pending
			failErrs = make([]error, len(pending))
			for i := range failErrs {
				failErrs[i] = err
			}
		}
		if ok := len(pending) - len(failed); ok > 0 {
			e.recordSuccess(r, pending, failed)
		}
		if len(failed) == 0 {
			return
		}
		r.errCount.Add(float64(len(failed)))
		r.noteError(err)
		// Permanent failures settle now; the rest retry.
		var retry []*event.Event
		for i, ev := range failed {
			if IsPermanent(failErrs[i]) {
				e.settleFailed(r, ev, "permanent", failErrs[i], attempt)
			} else {
				retry = append(retry, ev)
			}
		}
		if len(retry) == 0 {
			return
		}
		elapsed := time.Since(start)
		if r.policy.Retry.MaxAttempts > 0 && attempt >= r.policy.Retry.MaxAttempts ||
			r.policy.Retry.MaxElapsed > 0 && elapsed >= r.policy.Retry.MaxElapsed {
			for _, ev := range retry {
				e.settleFailed(r, ev, "expired", err, attempt)
			}
			return
		}
		wait := r.policy.Retry.backoffDelay(attempt - 1)
		hint, hinted := RetryAfterHint(err)
		if hinted && hint > wait {
			wait = hint
		}
		if r.policy.Retry.MaxElapsed > 0 && elapsed+wait > r.policy.Retry.MaxElapsed {
			if hinted && wait == hint {
				// The server asked us to wait past our budget: trying earlier would only be
				// refused again.
				for _, ev := range retry {
					e.settleFailed(r, ev, "expired", err, attempt)
				}
				return
			}
			wait = max(r.policy.Retry.MaxElapsed-elapsed, 0)
		}
		e.log.Debug("delivery failed, will retry", "output", name, "events", len(retry), "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			for _, ev := range retry {
				e.settleFailed(r, ev, "shutdown", fmt.Errorf("shutdown while retrying: %w", err), attempt)
			}
			return
		case <-t.C:
		}
		pending = retry
	}
}

func (e *Engine) recordSuccess(r *runner, sent, failed []*event.Event) {
	var isFailed map[*event.Event]bool
	if len(failed) > 0 {
		isFailed = make(map[*event.Event]bool, len(failed))
		for _, ev := range failed {
			isFailed[ev] = true
		}
	}
	now := time.Now()
	ok := 0
	for _, ev := range sent {
		if isFailed[ev] {
			continue
		}
		ok++
		if !ev.Received.IsZero() {
			r.latency.Observe(now.Sub(ev.Received).Seconds())
		}
	}
	r.okCount.Add(float64(ok))
	r.mu.Lock()
	r.lastOK = now
	r.delivered += uint64(ok)
	r.mu.Unlock()
}

func (r *runner) noteError(err error) {
	r.mu.Lock()
	r.lastError = err.Error()
	r.lastErrorAt = time.Now()
	r.mu.Unlock()
}

// settleFailed gives up on one event for one output: counted, logged, dead-lettered.
func (e *Engine) settleFailed(r *runner, ev *event.Event, reason string, cause error, attempts int) {
	if r == nil {
		return
	}
	name := r.out.Name()
	e.metrics.Dropped.WithLabelValues(name, reason).Inc()
	if reason == "shutdown" {
		e.shutdownLost.Add(1)
	}
	r.mu.Lock()
	r.failed++
	r.mu.Unlock()
	e.log.Warn("event not delivered", "output", name, "reason", reason, "attempts", attempts, "uuid", ev.UUID, "rule", ev.Rule, "err", cause)
	if e.dead == nil {
		return
	}
	if err := e.dead.Write(name, reason, cause, attempts, ev); err != nil {
		e.log.Error("dead-letter write failed", "output", name, "uuid", ev.UUID, "err", err)
		return
	}
	e.metrics.DeadLettered.WithLabelValues(name).Inc()
}

// OutputHealth is one output's state for /healthz.
type OutputHealth struct {
	Name        string     `json:"name"`
	State       string     `json:"state"` // ok, failing, idle
	QueueDepth  int        `json:"queue_depth"`
	QueueSize   int        `json:"queue_size"`
	InFlight    int64      `json:"in_flight"`
	Delivered   uint64     `json:"delivered"`
	Failed      uint64     `json:"failed"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// Health reports every output's state.
func (e *Engine) Health() []OutputHealth {
	out := make([]OutputHealth, 0, len(e.outputs))
	for _, r := range e.outputs {
		r.mu.Lock()
		h := OutputHealth{Name: r.out.Name(), QueueDepth: e.bus.Depth(r.out.Name()), QueueSize: r.policy.QueueSize,
			InFlight: r.inflight.Load(), Delivered: r.delivered, Failed: r.failed, LastError: r.lastError}
		switch {
		case !r.lastErrorAt.IsZero() && r.lastErrorAt.After(r.lastOK):
			h.State = "failing"
		case r.lastOK.IsZero():
			h.State = "idle"
		default:
			h.State = "ok"
		}
		if !r.lastOK.IsZero() {
			t := r.lastOK
			h.LastSuccess = &t
		}
		if !r.lastErrorAt.IsZero() {
			t := r.lastErrorAt
			h.LastErrorAt = &t
		}
		r.mu.Unlock()
		out = append(out, h)
	}
	return out
}
