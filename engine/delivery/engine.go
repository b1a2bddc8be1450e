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
	// requeued counts events left undelivered to a durable bus at shutdown.
	requeued atomic.Int64
	// stopping closes when Stop begins.
	stopping     chan struct{}
	stoppingOnce sync.Once
}

// Requeued is the number of events Stop left stored in a durable bus for a later delivery.
func (e *Engine) Requeued() int { return int(e.requeued.Load()) }

// BusState is the bus's own health (mode, connection, stored bytes).
func (e *Engine) BusState() BusState { return e.bus.State() }

// held is what one worker holds: the events of the delivery in progress that are not settled
// yet. Stop takes them over from a worker stuck in an output that ignores cancellation, so
// they are dead-lettered even though that worker never returns.
type held struct {
	mu        sync.Mutex
	pending   []*event.Event
	abandoned bool        // Stop settled pending itself: the worker must settle nothing more
	exited    atomic.Bool // the worker returned
}

// hold records evs as the worker's unsettled events; it returns false once Stop has taken the
// worker's events over.
func (h *held) hold(evs []*event.Event) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending = evs
	return !h.abandoned
}

// claim locks h for the worker to settle the outcome of an attempt; it returns false (and
// leaves h unlocked) when Stop took the events over meanwhile. Release with unlock.
func (h *held) claim() bool {
	h.mu.Lock()
	if h.abandoned {
		h.mu.Unlock()
		return false
	}
	return true
}

// unlock ends a claim, leaving still the events not settled yet.
func (h *held) unlock(still []*event.Event) {
	h.pending = still
	h.mu.Unlock()
}

// abandon is Stop's side: it marks the worker abandoned and returns what it held.
func (h *held) abandon() []*event.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.abandoned = true
	evs := h.pending
	h.pending = nil
	return evs
}

// runner is one output with its policy and state.
type runner struct {
	out      Output
	policy   Policy
	inflight atomic.Int64
	redactor *Redactor
	workers  []*held // one per worker, made by Start

	// ctl is the routing and noise control (minimumpriority, filter, dedup, rate limit),
	// swapped whole by Reconfigure while events flow.
	ctl atomic.Pointer[control]
	// Counts for /healthz, next to their metrics.
	filteredN, suppressedN, rateLimitedN atomic.Uint64
	filtered, suppressed, rateLimited    prometheus.Counter

	// The output's metric children, looked up once: label hashing on every event is
	// measurable at tens of thousands of events per second.
	okCount, errCount prometheus.Counter
	retries           prometheus.Counter
	redeliveredCount  prometheus.Counter
	latency           prometheus.Observer

	mu          sync.Mutex
	lastError   string
	lastErrorAt time.Time
	lastOK      time.Time
	delivered   uint64
	failed      uint64
	redelivered uint64
}

// NewEngine returns an engine on bus. dead may be nil.
func NewEngine(bus Bus, m *metrics.Metrics, dead *DeadLetter, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.Default()
	}
	if m == nil {
		m = metrics.New(0)
	}
	return &Engine{bus: bus, metrics: m, dead: dead, log: log, byName: map[string]*runner{}, stopping: make(chan struct{})}
}

// AddOption adjusts how the engine treats one output.
type AddOption func(*runner)

// WithRedactor removes the output's secrets from every error text of the output the engine
// logs, keeps for /healthz or writes to the dead-letter file.
func WithRedactor(rd *Redactor) AddOption {
	return func(r *runner) { r.redactor = rd }
}

// Add registers an output with its policy. Outputs must be added before Start. An output
// that only implements BatchSender gets one-event batches when batching is off.
func (e *Engine) Add(out Output, p Policy, opts ...AddOption) error {
	if err := p.Validate(out.Name()); err != nil {
		return err
	}
	_, isSender := out.(Sender)
	_, isBatch := out.(BatchSender)
	if !isSender && !isBatch {
		return fmt.Errorf("output %s implements neither Send nor SendBatch", out.Name())
	}
	if _, dup := e.byName[out.Name()]; dup {
		return fmt.Errorf("output %s configured twice", out.Name())
	}
	ctl, err := newControl(out.Name(), p, nil)
	if err != nil {
		return err
	}
	if err := e.bus.AddOutput(out.Name(), p); err != nil {
		return err
	}
	name := out.Name()
	r := &runner{out: out, policy: p,
		filtered: e.metrics.Filtered.WithLabelValues(name), suppressed: e.metrics.Suppressed.WithLabelValues(name),
		rateLimited: e.metrics.RateLimited.WithLabelValues(name),
		okCount:     e.metrics.Outputs.WithLabelValues(name, "ok"), errCount: e.metrics.Outputs.WithLabelValues(name, "error"),
		retries: e.metrics.Retries.WithLabelValues(name), redeliveredCount: e.metrics.Redelivered.WithLabelValues(name), latency: e.metrics.Latency.WithLabelValues(name)}
	r.ctl.Store(ctl)
	for _, o := range opts {
		o(r)
	}
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

// Route returns the outputs ev should go to: those whose minimumpriority it meets and whose
// filter it passes (counted as filtered otherwise), restricted to only when only is not
// empty.
func (e *Engine) Route(ev *event.Event, only string) []string {
	var names []string
	for _, r := range e.outputs {
		if only != "" && r.out.Name() != only {
			continue
		}
		ctl := r.ctl.Load()
		if ev.Priority < ctl.minPrio {
			continue
		}
		if ctl.filter != nil && !ctl.filter.Match(ev) {
			r.filtered.Inc()
			r.filteredN.Add(1)
			continue
		}
		names = append(names, r.out.Name())
	}
	return names
}

// RouteTest returns the outputs a POST /test event goes to: every output (or only), whatever
// its minimumpriority or filter.
func (e *Engine) RouteTest(only string) []string {
	var names []string
	for _, r := range e.outputs {
		if only == "" || r.out.Name() == only {
			names = append(names, r.out.Name())
		}
	}
	return names
}

// Publish queues ev for the named outputs and counts drops the bus reports.
func (e *Engine) Publish(ctx context.Context, ev *event.Event, outputs []string) (PublishResult, error) {
	res, err := e.bus.Publish(ctx, ev, outputs)
	for _, ej := range res.Evicted {
		e.settleFailed(e.byName[ej.Output], ej.Event, "queue_full", errors.New("evicted by whenfull=dropoldest"), 0)
	}
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
	e.bus.RemoveUndeclared(e.settleRemoved)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for _, r := range e.outputs {
		for i := 0; i < r.policy.MaxConcurrentRequests; i++ {
			h := &held{}
			r.workers = append(r.workers, h)
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer h.exited.Store(true)
				e.work(ctx, r, h)
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
		st := e.bus.State()
		connected := 0.0
		if st.Connected {
			connected = 1
		}
		e.metrics.BusConnected.Set(connected)
		e.metrics.BusStored.Set(float64(st.StoredBytes))
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

// stopGrace is how long Stop waits, after cancelling, for sends that ignore their context
// before it dead-letters their events itself.
var stopGrace = 2 * time.Second

// Stop closes the bus and lets the workers drain the queues for up to timeout. Then it
// cancels every send: an event whose send ends, or that waits for a retry, or that is still
// queued, is dead-lettered (when configured) and counted as dropped with reason "shutdown".
// An output that does not return within a short grace after cancellation cannot hold its
// events hostage: Stop dead-letters what its workers hold and leaves them behind. So every
// event accepted ends delivered or dead-lettered. Stop reports how many were given up this
// way, and must follow Start.
//
// On a durable bus nothing is given up at shutdown: an event waiting for a retry is released
// at once, and one whose send is cancelled or never returns is left unacknowledged, so the
// bus delivers it after the restart (Requeued counts them).
func (e *Engine) Stop(timeout time.Duration) int {
	e.stoppingOnce.Do(func() { close(e.stopping) })
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
		e.log.Warn("shutdown timeout reached with deliveries pending; cancelling them", "timeout", timeout)
		e.cancel()
		grace := time.NewTimer(stopGrace)
		defer grace.Stop()
		select {
		case <-done:
		case <-grace.C:
			e.abandonStuck()
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
		if r.stuck() {
			continue // closing under a send that never returned could block as well
		}
		if c, ok := r.out.(Closer); ok {
			if err := c.Close(); err != nil {
				e.log.Warn("closing output", "output", r.out.Name(), "err", r.redactor.Redact(err.Error()))
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

// stuck reports whether a worker of r has not returned.
func (r *runner) stuck() bool {
	for _, h := range r.workers {
		if !h.exited.Load() {
			return true
		}
	}
	return false
}

// abandonStuck settles, with reason "shutdown", the events held by workers that did not return
// after their sends were cancelled.
func (e *Engine) abandonStuck() {
	for _, r := range e.outputs {
		for _, h := range r.workers {
			if h.exited.Load() {
				continue
			}
			evs := h.abandon()
			if e.bus.Durable() {
				// Unacknowledged, the events stay stored and are delivered again later.
				if len(evs) > 0 {
					e.log.Error("an output did not return after its send was cancelled; its events stay stored for a later delivery",
						"output", r.out.Name(), "events", len(evs), "grace", stopGrace)
				}
				e.requeued.Add(int64(len(evs)))
				continue
			}
			if len(evs) > 0 {
				e.log.Error("an output did not return after its send was cancelled; dead-lettering what it held",
					"output", r.out.Name(), "events", len(evs), "grace", stopGrace)
			}
			for _, ev := range evs {
				e.settleFailed(r, ev, "shutdown", errors.New("send did not return after shutdown cancelled it"), 0)
			}
		}
	}
}

// work is one worker's loop: take events (a batch when batching), deliver, repeat.
func (e *Engine) work(ctx context.Context, r *runner, h *held) {
	sender, isSender := r.out.(Sender)
	batcher, batching := r.out.(BatchSender)
	maxEvents := r.policy.Batch.MaxEvents
	if !batching || maxEvents <= 1 {
		batching = false
	}
	sendOne := func(actx context.Context, evs []*event.Event) error { return sender.Send(actx, evs[0]) }
	if !isSender {
		sendOne = batcher.SendBatch // batches of one when batching is off
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
			if d, err = e.receive(ctx, r); err != nil {
				return
			}
		}
		if !batching {
			e.deliver(ctx, r, h, []Delivery{d}, sendOne)
			continue
		}
		var batch []Delivery
		batch, next = e.collect(ctx, r, d, maxEvents)
		e.deliver(ctx, r, h, batch, batcher.SendBatch)
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
		d, err := e.receive(fctx, r)
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
// h tracks the events not settled yet, so that Stop can take them over if the output never
// returns from a cancelled send.
func (e *Engine) deliver(ctx context.Context, r *runner, h *held, ds []Delivery, send sendFunc) {
	name := r.out.Name()
	n := int64(len(ds))
	r.inflight.Add(n)
	defer r.inflight.Add(-n)
	// requeue holds the events left to a durable bus at shutdown: they are released for a
	// later delivery rather than acknowledged.
	var requeue map[*event.Event]bool
	defer func() {
		for _, d := range ds {
			if requeue[d.Event()] {
				d.Requeue()
			} else {
				d.Done()
			}
		}
	}()
	pending := make([]*event.Event, 0, len(ds))
	for _, d := range ds {
		n := d.Deliveries()
		if n > 1 {
			r.redeliveredCount.Inc()
			r.mu.Lock()
			r.redelivered++
			r.mu.Unlock()
		}
		if limit := r.policy.Retry.MaxDeliveries; limit > 0 && n > limit {
			e.settleFailed(r, d.Event(), "max_deliveries",
				fmt.Errorf("handed out %d times without being settled (retry.maxdeliveries %d): saker died while delivering it each time", n, limit), 0)
			continue
		}
		pending = append(pending, d.Event())
	}
	if len(pending) == 0 {
		return
	}
	if !h.hold(pending) {
		// Stop already took this worker's events over: these came after, settle them as
		// at shutdown.
		requeue = e.settleAtShutdown(r, pending, nil, 0)
		return
	}
	start := time.Now()
	var lastErr error
	// On a durable bus a retry need not outlast shutdown: the event stays stored.
	var stopping <-chan struct{}
	if e.bus.Durable() {
		stopping = e.stopping
	}
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil || attempt > 1 && isClosed(stopping) {
			// Shutdown timeout (or shutdown on a durable bus): nothing more is attempted.
			if !h.claim() {
				requeue = setOf(pending) // Stop settled them (abandonStuck): never acknowledge them here
				return
			}
			requeue = e.settleAtShutdown(r, pending, lastErr, attempt-1)
			h.unlock(nil)
			return
		}
		if attempt > 1 {
			r.retries.Add(float64(len(pending)))
		}
		actx, cancel := context.WithTimeout(ctx, r.policy.Timeout)
		err := send(actx, pending)
		cancel()
		if !h.claim() {
			// Stop took these events over (abandonStuck) while the send ignored its
			// cancellation: on a durable bus they stay stored unless the send delivered them.
			if err != nil {
				requeue = setOf(pending)
			}
			return
		}
		retry, wait, done := e.settleAttempt(r, pending, err, attempt, start)
		h.unlock(retry)
		if done {
			return
		}
		lastErr = err
		e.log.Debug("delivery failed, will retry", "output", name, "events", len(retry), "attempt", attempt, "wait", wait,
			"err", r.redactor.Redact(err.Error()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-stopping:
			t.Stop()
		case <-t.C:
		}
		pending = retry
	}
}

// settleAtShutdown settles events no longer attempted at shutdown. On a durable bus they are
// left stored, delivered after the restart (or by another replica), and returned for the
// caller to requeue; otherwise they are given up with reason "shutdown".
func (e *Engine) settleAtShutdown(r *runner, pending []*event.Event, lastErr error, attempts int) map[*event.Event]bool {
	if e.bus.Durable() {
		e.requeued.Add(int64(len(pending)))
		return setOf(pending)
	}
	for _, ev := range pending {
		e.settleFailed(r, ev, "shutdown", shutdownCause(lastErr), attempts)
	}
	return nil
}

// setOf is evs as a set.
func setOf(evs []*event.Event) map[*event.Event]bool {
	set := make(map[*event.Event]bool, len(evs))
	for _, ev := range evs {
		set[ev] = true
	}
	return set
}

// isClosed reports whether ch is closed; a nil ch never is.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return ch != nil
	default:
		return false
	}
}

// shutdownCause is the error recorded for an event given up at shutdown.
func shutdownCause(last error) error {
	if last == nil {
		return errors.New("shutdown before the event could be sent")
	}
	return fmt.Errorf("shutdown while retrying: %w", last)
}

// settleAttempt records the outcome of one attempt on pending: successes, permanent failures
// and expired ones are settled. It returns the events to retry after wait, or done when none
// is left.
func (e *Engine) settleAttempt(r *runner, pending []*event.Event, err error, attempt int, start time.Time) (retry []*event.Event, wait time.Duration, done bool) {
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
		return nil, 0, true
	}
	r.errCount.Add(float64(len(failed)))
	r.noteError(err)
	// Permanent failures settle now; the rest retry.
	for i, ev := range failed {
		if IsPermanent(failErrs[i]) {
			e.settleFailed(r, ev, "permanent", failErrs[i], attempt)
		} else {
			retry = append(retry, ev)
		}
	}
	if len(retry) == 0 {
		return nil, 0, true
	}
	elapsed := time.Since(start)
	if r.policy.Retry.MaxAttempts > 0 && attempt >= r.policy.Retry.MaxAttempts ||
		r.policy.Retry.MaxElapsed > 0 && elapsed >= r.policy.Retry.MaxElapsed {
		for _, ev := range retry {
			e.settleFailed(r, ev, "expired", err, attempt)
		}
		return nil, 0, true
	}
	wait = r.policy.Retry.backoffDelay(attempt - 1)
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
			return nil, 0, true
		}
		wait = max(r.policy.Retry.MaxElapsed-elapsed, 0)
	}
	return retry, wait, false
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
	text := r.redactor.Redact(err.Error())
	r.mu.Lock()
	r.lastError = text
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
	text := r.redactor.Redact(cause.Error())
	e.log.Warn("event not delivered", "output", name, "reason", reason, "attempts", attempts, "uuid", ev.UUID, "rule", ev.Rule, "err", text)
	if e.dead == nil {
		return
	}
	if err := e.dead.Write(name, reason, errors.New(text), attempts, ev); err != nil {
		e.log.Error("dead-letter write failed", "output", name, "uuid", ev.UUID, "err", err)
		return
	}
	e.metrics.DeadLettered.WithLabelValues(name).Inc()
}

// settleRemoved dead-letters an event a durable bus kept for an output that is no longer
// configured (reason output_removed), so an operator can replay it once the output is back.
func (e *Engine) settleRemoved(output string, ev *event.Event) {
	e.metrics.Dropped.WithLabelValues(output, "output_removed").Inc()
	if e.dead == nil {
		return
	}
	if err := e.dead.Write(output, "output_removed", errors.New("output no longer configured"), 0, ev); err != nil {
		e.log.Error("dead-letter write failed", "output", output, "uuid", ev.UUID, "err", err)
		return
	}
	e.metrics.DeadLettered.WithLabelValues(output).Inc()
}

// OutputHealth is one output's state for /healthz.
type OutputHealth struct {
	Name       string `json:"name"`
	State      string `json:"state"` // ok, failing, idle
	QueueDepth int    `json:"queue_depth"`
	QueueSize  int    `json:"queue_size"`
	InFlight   int64  `json:"in_flight"`
	Delivered  uint64 `json:"delivered"`
	Failed     uint64 `json:"failed"`
	// Redelivered counts events this replica received again after an earlier delivery
	// attempt ended without settling (a crash, a dead replica): durable buses only.
	Redelivered uint64 `json:"redelivered"`
	// Filtered, Suppressed and RateLimited count events the output's filter kept out, its
	// dedup window suppressed, and that waited for its rate limit.
	Filtered    uint64     `json:"filtered"`
	Suppressed  uint64     `json:"suppressed"`
	RateLimited uint64     `json:"rate_limited"`
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
			InFlight: r.inflight.Load(), Delivered: r.delivered, Failed: r.failed, Redelivered: r.redelivered, LastError: r.lastError,
			Filtered: r.filteredN.Load(), Suppressed: r.suppressedN.Load(), RateLimited: r.rateLimitedN.Load()}
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
