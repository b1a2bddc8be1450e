package delivery

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// rounds alternates accepting and delivering when both are busy, the way a network driver
// switches from an interrupt per packet to polling under load. Delivering each event the
// moment it is queued wakes an idle worker, and through it the receiver, once per event, while
// the inputs keep saker busy; with the senders, saker and a receiver sharing a few cores,
// those wake-ups and the preemptions they cause cost more CPU than the requests themselves
// (see docs/operations.md, Sizing). So events are delivered in rounds:
//
//   - A round opens when events are queued for an output whose workers wait: at once if the
//     last round ended at least an interval ago (an alert after a quiet spell goes out without
//     delay), else when the interval is up.
//   - In a round, each output it woke (a part) delivers until a worker of it comes back from a
//     delivery to an empty queue; its workers then wait for the next round, even if events
//     were queued meanwhile.
//   - While a round is under way the inputs wait before queuing more, until every part is
//     done. Every interval the hold is checked: an output none of whose workers came back
//     from a delivery in that interval (a slow or remote receiver, an output retrying)
//     leaves rounds for directSpell intervals: its workers take each event as it comes, and
//     the inputs no longer wait for it. Rounds only pay off with receivers that answer
//     within milliseconds.
//   - A round lasts at most holdLimit intervals: then the inputs go on, and the outputs still
//     delivering their part wait for the next round, which drains more of their queue.
//
// Under a steady load that is an interval of accepting, then the delivery of what it
// queued; at a low rate, an event waits at most an interval. Only the memory bus uses
// rounds: a durable bus's consumers are woken by the NATS server, not by Publish.
type rounds struct {
	interval time.Duration
	depth    func(*runner) int

	// waiting counts workers waiting for a round; Publish opens none when it is zero.
	waiting atomic.Int64
	// scheduled is set while a round is due: its timer armed, or the hold under way to end.
	scheduled atomic.Bool
	// hold is closed when the round under way was delivered; nil between rounds.
	hold    atomic.Pointer[chan struct{}]
	stopped atomic.Bool

	mu      sync.Mutex
	next    chan struct{} // closed when the next round opens
	lastEnd time.Time     // when the last round was delivered (or opened, if it held nothing)
	timer   *time.Timer   // opens the next round when the interval is up
	// parts are the outputs of the round under way the inputs still wait for.
	parts     map[*runner]struct{}
	waitingOn map[*runner]int // workers of each output waiting for the next round
	holdCheck *time.Timer     // checks the hold's progress every interval
	holdStart time.Time
	// backAt is each part's count of workers back from a delivery at the last check.
	backAt map[*runner]uint64
}

// holdLimit bounds a round, in intervals; an output none of whose workers came back from a
// delivery in an interval of a round delivers each event at once for directSpell intervals.
const (
	holdLimit   = 10
	directSpell = 100
)

// doneCtx is a context already cancelled: a receive with it takes a queued event or returns
// context.Canceled at once.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// newRounds returns rounds of the interval; depth reads an output's queue depth.
func newRounds(interval time.Duration, depth func(*runner) int) *rounds {
	rd := &rounds{interval: interval, depth: depth, next: make(chan struct{}), waitingOn: map[*runner]int{}}
	rd.timer = time.AfterFunc(time.Hour, rd.open)
	rd.timer.Stop()
	rd.holdCheck = time.AfterFunc(time.Hour, rd.checkHold)
	rd.holdCheck.Stop()
	return rd
}

// queued is called after an event was queued: it opens a round, or schedules one, when a
// worker waits for it.
func (rd *rounds) queued() {
	if rd.waiting.Load() == 0 || rd.scheduled.Load() {
		return
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.stopped.Load() || rd.scheduled.Load() {
		return
	}
	rd.scheduled.Store(true)
	if rd.hold.Load() == nil { // else the end of the hold schedules it
		rd.scheduleLocked()
	}
}

// scheduleLocked opens the due round now, or arms the timer for when the interval is up.
func (rd *rounds) scheduleLocked() {
	if wait := rd.interval - time.Since(rd.lastEnd); wait > 0 {
		rd.timer.Reset(wait)
		return
	}
	rd.openLocked()
}

// open opens the scheduled round (the timer's function).
func (rd *rounds) open() {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if !rd.stopped.Load() {
		rd.openLocked()
	}
}

// openLocked wakes the waiting workers of every output that has events queued, and holds the
// inputs until they delivered them.
func (rd *rounds) openLocked() {
	rd.scheduled.Store(false)
	parts := make(map[*runner]struct{}, len(rd.waitingOn))
	for r := range rd.waitingOn {
		if rd.depth(r) > 0 {
			parts[r] = struct{}{}
			r.inRound.Store(true)
		}
	}
	if len(parts) == 0 {
		return // the events were taken meanwhile; the next Publish schedules a round
	}
	// No hold is under way: a round is only scheduled (queued, endHoldLocked) without one.
	h := make(chan struct{})
	rd.hold.Store(&h)
	rd.holdStart = time.Now()
	rd.holdCheck.Reset(rd.interval)
	rd.parts = parts
	rd.backAt = make(map[*runner]uint64, len(parts))
	for r := range parts {
		rd.backAt[r] = r.roundBack.Load()
	}
	close(rd.next)
	rd.next = make(chan struct{})
}

// checkHold runs every interval of a round (the hold timer's function): an output none of
// whose workers came back from a delivery since the last check leaves rounds for a while,
// and the inputs stop waiting for it; after holdLimit intervals the round ends.
func (rd *rounds) checkHold() {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.hold.Load() == nil {
		return
	}
	over := time.Since(rd.holdStart) >= holdLimit*rd.interval
	until := time.Now().Add(directSpell * rd.interval).UnixNano()
	for r := range rd.parts {
		back := r.roundBack.Load()
		switch {
		case back == rd.backAt[r]:
			r.directUntil.Store(until)
			r.inRound.Store(false)
			delete(rd.parts, r)
		case over:
			r.inRound.Store(false)
		}
		rd.backAt[r] = back
	}
	if over || len(rd.parts) == 0 {
		rd.endHoldLocked()
		return
	}
	rd.holdCheck.Reset(rd.interval)
}

// direct reports whether r's workers take each event as it comes instead of in rounds.
func (rd *rounds) direct(r *runner) bool {
	if rd.stopped.Load() {
		return true
	}
	until := r.directUntil.Load() // 0 unless the output ever left rounds: no clock read
	return until != 0 && until > time.Now().UnixNano()
}

// endHoldLocked lets the inputs go on, and opens the round that came due meanwhile, or
// schedules it an interval later.
func (rd *rounds) endHoldLocked() {
	h := rd.hold.Swap(nil)
	if h == nil {
		return
	}
	close(*h)
	rd.holdCheck.Stop()
	rd.parts = nil
	rd.backAt = nil
	rd.lastEnd = time.Now()
	if rd.scheduled.Load() && !rd.stopped.Load() {
		rd.scheduleLocked()
	}
}

// doneWith records that r has delivered its part of the round: its workers wait for the
// next one.
func (rd *rounds) doneWith(r *runner) {
	r.inRound.Store(false)
	if _, ok := rd.parts[r]; ok {
		delete(rd.parts, r)
		if len(rd.parts) == 0 {
			rd.endHoldLocked()
		}
	}
}

// await is a worker of r with nothing to take: r's queue is empty, or r has no part in a
// round. It waits for the next round (or ctx). afterDelivery says the worker came back from
// a delivery, rather than being woken by a round to find the events taken by other workers:
// if r's part is under way and its queue empty, that part is done.
func (rd *rounds) await(ctx context.Context, r *runner, afterDelivery bool) error {
	rd.mu.Lock()
	if rd.stopped.Load() {
		rd.mu.Unlock()
		return nil
	}
	if afterDelivery && r.inRound.Load() && rd.depth(r) == 0 {
		rd.doneWith(r)
	}
	next := rd.next
	rd.waitingOn[r]++
	rd.waiting.Add(1)
	rd.mu.Unlock()
	// Events queued before this worker was counted as waiting scheduled no round.
	if rd.depth(r) > 0 {
		rd.queued()
	}
	var err error
	select {
	case <-next:
	case <-ctx.Done():
		err = ctx.Err()
	}
	rd.mu.Lock()
	if rd.waitingOn[r]--; rd.waitingOn[r] <= 0 {
		delete(rd.waitingOn, r)
	}
	rd.waiting.Add(-1)
	rd.mu.Unlock()
	return err
}

// forget drops r from the round under way (it is being removed), so the inputs do not wait
// for it.
func (rd *rounds) forget(r *runner) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.doneWith(r)
}

// wait is the inputs' side: it returns once no round is being delivered (or ctx ends).
func (rd *rounds) wait(ctx context.Context) {
	h := rd.hold.Load()
	if h == nil {
		return
	}
	select {
	case <-*h:
	case <-ctx.Done():
	}
}

// stop ends rounds for good (shutdown): waiting workers and inputs go on, and none waits
// again.
func (rd *rounds) stop() {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.stopped.Load() {
		return
	}
	rd.stopped.Store(true)
	rd.timer.Stop()
	rd.endHoldLocked()
	close(rd.next)
}
