package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// ErrClosed is returned by Receive once the bus is closed and the output's queue is empty.
var ErrClosed = errors.New("bus closed")

// FullError is returned by Publish when an output with whenfull=block had no room within its
// block timeout. Nothing was queued for any output: the caller can retry the whole event.
type FullError struct{ Output string }

func (e *FullError) Error() string {
	return fmt.Sprintf("output %s: queue full, event not accepted (retry later)", e.Output)
}

// PublishResult says which outputs dropped the event, or evicted an older one, because their
// queue was full (whenfull=dropnewest/dropoldest). The engine settles both (counted, logged,
// dead-lettered): a bus reports them here rather than through a hook of its own.
type PublishResult struct {
	DroppedNewest []string
	Evicted       []Eviction
}

// Eviction is a queued event a bus evicted from output's queue to make room for a newer one.
type Eviction struct {
	Output string
	Event  *event.Event
}

// ErrUnavailable wraps a Publish error meaning the bus cannot store events right now (the
// NATS server is unreachable): nothing was stored, the input answers 503 with Retry-After.
var ErrUnavailable = errors.New("event store unavailable")

// Delivery is one event handed to an output's worker. The worker calls Done once the event is
// settled (delivered, dead-lettered or given up), which for a durable bus acknowledges it, or
// Requeue to leave it to a durable bus for a later delivery (at shutdown). Exactly one of the
// two is called.
type Delivery interface {
	Event() *event.Event
	Done()
	Requeue()
	// Deliveries is how many times the bus handed this event to this output, this time
	// included: more than 1 when a replica died or saker was killed while delivering it.
	// The engine counts redeliveries and gives up past retry.maxdeliveries.
	Deliveries() int
}

// BusState is the bus's own state for /healthz and the metrics.
type BusState struct {
	// Mode is memory, embedded (the spool) or external (a NATS server).
	Mode string `json:"mode"`
	// Connected is false while a durable bus cannot reach its NATS server.
	Connected bool `json:"connected"`
	// StoredBytes and StoredEvents are what the stream holds on disk (durable buses).
	StoredBytes  uint64 `json:"stored_bytes,omitempty"`
	StoredEvents uint64 `json:"stored_events,omitempty"`
	MaxBytes     int64  `json:"max_bytes,omitempty"`
	Error        string `json:"error,omitempty"`
}

// Bus carries events from the inputs to the outputs' workers. The in-memory bus is the
// default; a durable bus keeps deliveries until Done so they survive a restart.
type Bus interface {
	// AddOutput declares an output's queue before any Publish.
	AddOutput(name string, p Policy) error
	// UpdateOutput applies a rebuilt output's policy (queue size, whenfull) to its queue,
	// keeping what the queue holds.
	UpdateOutput(name string, p Policy) error
	// Drained reports whether output holds nothing to deliver: nothing queued, nothing
	// handed out and unsettled (the drain of a removed output ends there).
	Drained(name string) bool
	// RemoveOutput forgets a drained output's queue.
	RemoveOutput(name string)
	// Publish queues ev for every named output, or for none (a *FullError) when an output
	// applying whenfull=block stays full past its block timeout. The result lists what was
	// dropped or evicted, also when err is not nil.
	Publish(ctx context.Context, ev *event.Event, outputs []string) (PublishResult, error)
	// Receive blocks until output's next delivery, ctx ends, or the bus is closed and the
	// queue is empty (ErrClosed).
	Receive(ctx context.Context, output string) (Delivery, error)
	// Depth is the number of events waiting for output.
	Depth(output string) int
	// Close stops Publish; a memory bus's Receive keeps draining what is queued, a durable
	// bus's returns ErrClosed at once (what is queued stays stored).
	Close()
	// Durable reports whether undelivered events survive a restart: then Stop requeues what
	// it could not deliver instead of dead-lettering it.
	Durable() bool
	// State is the bus's own health.
	State() BusState
	// RemoveUndeclared runs once every output was added: a durable bus deletes what it keeps
	// for outputs no longer configured (their consumers, and the events stored for them,
	// each handed to removed first), so they do not hold the store's space forever.
	RemoveUndeclared(removed func(output string, ev *event.Event))
}

// MemoryBus is a Bus of bounded in-memory queues: nothing survives a restart, but memory is
// bounded by the queue sizes whatever the outputs do.
type MemoryBus struct {
	mu     sync.RWMutex
	queues map[string]*memQueue
	closed chan struct{}
	once   sync.Once
}

type memQueue struct {
	policy Policy
	// slots is a semaphore of the queue's capacity: Publish takes a slot for each output
	// before committing to any, so an event is queued for all its outputs or none.
	slots chan struct{}
	items chan *event.Event
	// olds are the queues this one replaced with another size (UpdateOutput), still holding
	// events: Receive empties them first. Set under the bus's write lock.
	olds []*memQueue
	// retired closes when the queue is replaced, waking its receivers to find the new one.
	retired chan struct{}
}

func newMemQueue(p Policy) *memQueue {
	return &memQueue{policy: p, slots: make(chan struct{}, p.QueueSize), items: make(chan *event.Event, p.QueueSize),
		retired: make(chan struct{})}
}

// take takes one queued event without waiting.
func (q *memQueue) take() (*event.Event, bool) {
	select {
	case ev := <-q.items:
		<-q.slots
		return ev, true
	default:
		return nil, false
	}
}

type memDelivery struct{ ev *event.Event }

func (d memDelivery) Event() *event.Event { return d.ev }
func (d memDelivery) Done()               {}
func (d memDelivery) Requeue()            {}
func (d memDelivery) Deliveries() int     { return 1 }

// NewMemoryBus returns an empty in-memory bus.
func NewMemoryBus() *MemoryBus {
	return &MemoryBus{queues: map[string]*memQueue{}, closed: make(chan struct{})}
}

// AddOutput creates the output's queue.
func (b *MemoryBus) AddOutput(name string, p Policy) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.queues[name]; dup {
		return fmt.Errorf("output %s declared twice", name)
	}
	b.queues[name] = newMemQueue(p)
	return nil
}

// UpdateOutput applies p to the output's queue. A new queue size replaces the queue: the
// events of the old one are delivered first, and until they are, the queue holds them on
// top of its new size.
func (b *MemoryBus) UpdateOutput(name string, p Policy) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, ok := b.queues[name]
	if !ok {
		return fmt.Errorf("unknown output %q", name)
	}
	if p.QueueSize == q.policy.QueueSize {
		q.policy = p
		return nil
	}
	n := newMemQueue(p)
	for _, o := range append(q.olds, q) {
		if len(o.items) > 0 {
			n.olds = append(n.olds, o)
		}
	}
	b.queues[name] = n
	close(q.retired)
	return nil
}

// Drained reports whether the output's queue is empty (a memory queue hands nothing out
// that is not settled in memory).
func (b *MemoryBus) Drained(name string) bool { return b.Depth(name) == 0 }

// RemoveOutput forgets the output's queue.
func (b *MemoryBus) RemoveOutput(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.queues, name)
}

// Publish reserves a slot in every output's queue, then commits the event to all of them.
func (b *MemoryBus) Publish(ctx context.Context, ev *event.Event, outputs []string) (PublishResult, error) {
	var res PublishResult
	select {
	case <-b.closed:
		return res, ErrClosed
	default:
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	reserved := make([]*memQueue, 0, len(outputs))
	release := func() {
		for _, q := range reserved {
			<-q.slots
		}
	}
	for _, name := range outputs {
		q, ok := b.queues[name]
		if !ok {
			release()
			return PublishResult{Evicted: res.Evicted}, fmt.Errorf("unknown output %q", name)
		}
		got, evicted := b.reserve(ctx, q)
		switch {
		case got:
			reserved = append(reserved, q)
			if evicted != nil {
				res.Evicted = append(res.Evicted, Eviction{Output: name, Event: evicted})
			}
		case q.policy.WhenFull == WhenFullDropNewest:
			res.DroppedNewest = append(res.DroppedNewest, name)
		default:
			release()
			// Evictions already made stand: report them so they are settled.
			if err := ctx.Err(); err != nil {
				return PublishResult{Evicted: res.Evicted}, fmt.Errorf("publish to %s: %w", name, err)
			}
			return PublishResult{Evicted: res.Evicted}, &FullError{Output: name}
		}
	}
	for _, q := range reserved {
		q.items <- ev // never blocks: the slot guarantees room
	}
	return res, nil
}

// reserve takes one slot of q according to its whenfull policy. evicted is the oldest queued
// event when it was evicted to make room.
func (b *MemoryBus) reserve(ctx context.Context, q *memQueue) (got bool, evicted *event.Event) {
	select {
	case q.slots <- struct{}{}:
		return true, nil
	default:
	}
	switch q.policy.WhenFull {
	case WhenFullDropNewest:
		return false, nil
	case WhenFullDropOldest:
		for {
			select {
			case old := <-q.items:
				return true, old // the evicted event's slot becomes ours
			case q.slots <- struct{}{}:
				return true, nil
			case <-ctx.Done():
				return false, nil
			}
		}
	}
	if q.policy.BlockTimeout <= 0 {
		return false, nil
	}
	t := time.NewTimer(q.policy.BlockTimeout)
	defer t.Stop()
	select {
	case q.slots <- struct{}{}:
		return true, nil
	case <-t.C:
	case <-ctx.Done():
	}
	return false, nil
}

// Receive takes the next event of output; its slot frees at once.
func (b *MemoryBus) Receive(ctx context.Context, output string) (Delivery, error) {
	for {
		b.mu.RLock()
		q, ok := b.queues[output]
		var olds []*memQueue
		if ok {
			olds = q.olds
		}
		b.mu.RUnlock()
		if !ok {
			return nil, fmt.Errorf("unknown output %q", output)
		}
		for _, o := range olds {
			if ev, ok := o.take(); ok {
				return memDelivery{ev}, nil
			}
		}
		if ev, ok := q.take(); ok {
			return memDelivery{ev}, nil
		}
		if isClosed(b.closed) {
			return nil, ErrClosed // drained: nothing can be published any more
		}
		select {
		case ev := <-q.items:
			<-q.slots
			return memDelivery{ev}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.retired: // resized: receive from the new queue
		case <-b.closed:
		}
	}
}

// Depth is the number of queued events for output.
func (b *MemoryBus) Depth(output string) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	q, ok := b.queues[output]
	if !ok {
		return 0
	}
	n := len(q.items)
	for _, o := range q.olds {
		n += len(o.items)
	}
	return n
}

// Close stops new publishes; queued events remain receivable.
func (b *MemoryBus) Close() { b.once.Do(func() { close(b.closed) }) }

// Durable is false: the queues live in memory.
func (b *MemoryBus) Durable() bool { return false }

// RemoveUndeclared does nothing: a memory bus keeps nothing across restarts.
func (b *MemoryBus) RemoveUndeclared(func(string, *event.Event)) {}

// State reports the memory mode, always connected.
func (b *MemoryBus) State() BusState { return BusState{Mode: "memory", Connected: true} }

// FailedBus stands in for a durable bus that could not be opened (a spool that does not
// load): saker keeps running so the reason stays visible in /healthz and the metrics instead
// of a restart loop, refuses every event (the inputs answer 503) and delivers nothing, so it
// never starts empty over stored events.
type FailedBus struct {
	mode   string
	err    error
	closed chan struct{}
	once   sync.Once
}

// NewFailedBus returns a bus of mode (embedded, external) that failed with err.
func NewFailedBus(mode string, err error) *FailedBus {
	return &FailedBus{mode: mode, err: err, closed: make(chan struct{})}
}

// AddOutput accepts every output: nothing is ever queued for it.
func (b *FailedBus) AddOutput(string, Policy) error { return nil }

// UpdateOutput accepts every change: nothing is queued.
func (b *FailedBus) UpdateOutput(string, Policy) error { return nil }

// Drained is true: this process queued nothing (what the unopened store holds stays there).
func (b *FailedBus) Drained(string) bool { return true }

// RemoveOutput does nothing.
func (b *FailedBus) RemoveOutput(string) {}

// Publish refuses the event with the reason the bus failed.
func (b *FailedBus) Publish(context.Context, *event.Event, []string) (PublishResult, error) {
	return PublishResult{}, fmt.Errorf("%w: %v", ErrUnavailable, b.err)
}

// Receive waits until ctx ends or the bus closes: there is never an event.
func (b *FailedBus) Receive(ctx context.Context, _ string) (Delivery, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.closed:
		return nil, ErrClosed
	}
}

// Depth is 0: the events stored in the unopened store are not known.
func (b *FailedBus) Depth(string) int { return 0 }

// Close ends the pending Receives.
func (b *FailedBus) Close() { b.once.Do(func() { close(b.closed) }) }

// Durable is true: what the store holds stays there for a later start.
func (b *FailedBus) Durable() bool { return true }

// RemoveUndeclared does nothing: the store is not open.
func (b *FailedBus) RemoveUndeclared(func(string, *event.Event)) {}

// State reports the bus disconnected, with the reason.
func (b *FailedBus) State() BusState {
	return BusState{Mode: b.mode, Connected: false, Error: b.err.Error()}
}
