// Package jetstream is saker's durable event bus on NATS JetStream, in two modes: embedded (a
// NATS server inside saker, its file store under spool.path) and external (a NATS server or
// cluster shared by every replica). Either way an event is stored in one stream before the
// input answers 200; each output is a durable pull consumer on its own subject that
// acknowledges an event once the engine settled it (delivered or dead-lettered). An event is
// stored once per output it is routed to, so the stream's retention is work-queue: a copy
// leaves the disk once its output acknowledged it, which is what interest retention would
// give, and nats-server 2.9 lost acknowledged events of an interest stream restarted under
// load (TestExternalRestartUnderLoadLosesNothingAccepted) where a work queue lost none.
//
// The engine keeps applying the output's retry policy while it holds an event; the bus extends
// the event's ack deadline meanwhile (InProgress), so the server redelivers an event only when
// the process holding it died or released it at shutdown. Replicas share each output's
// consumer, so an event goes to one replica per output.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
)

// publishTimeout bounds the wait for the stream's acknowledgement of a publish; past it the
// input answers 503 (a retried publish carries the same Nats-Msg-Id, so it is not stored twice).
const publishTimeout = 3 * time.Second

// JetStream API error codes of a stream that has no room (nats-server's errors.json).
const (
	errInsufficientResources    = 10023
	errStorageResourcesExceeded = 10047
	errStreamStoreFailed        = 10077 // "maximum bytes exceeded" with discard=new
)

// receivedHeader carries the event's acceptance time, for the delivery latency histogram.
const receivedHeader = "Saker-Received"

// Bus is a delivery.Bus on a JetStream stream.
type Bus struct {
	mode     string // embedded or external
	where    string // the spool's path or the server's URL, for errors
	log      *slog.Logger
	nc       *nats.Conn
	js       jetstream.JetStream
	name     string // the stream's name
	prefix   string // its subjects' prefix
	maxBytes int64
	ackWait  time.Duration
	replicas int
	shutdown func() // stops the embedded server, if any
	// ready is set once the stream and the consumers exist.
	ready atomic.Bool
	// removed, once RemoveUndeclared ran, receives the events of outputs no longer
	// configured; their removal waits for the stream's set-up when NATS was unreachable.
	removed func(output string, ev *event.Event)

	mu     sync.RWMutex
	queues map[string]*queue

	// batch stores the events saker gave their UUID, in batches (batch.go).
	batch *batcher

	closed    chan struct{}
	closeOnce sync.Once
	pumps     sync.WaitGroup

	infoMu  sync.Mutex
	stream  jetstream.Stream // nil until set up
	info    *jetstream.StreamInfo
	infoAt  time.Time
	infoErr error
}

// queue is one output's durable consumer and the hand-off to its workers.
type queue struct {
	name    string
	subject string
	policy  delivery.Policy
	cons    jetstream.Consumer
	msgs    jetstream.MessagesContext
	ready   chan *message
	// lastReply is the acknowledgement subject of the last message the pump took (owned by
	// the pump; read once it stopped), for applyAcks.
	lastReply string

	mu     sync.Mutex
	depth  int
	at     time.Time
	errLog time.Time
}

// open finishes what both modes share: the stream, checked against what an earlier run
// created. When the server is not reachable yet (external mode), the stream and the
// consumers are set up in the background once it is, and Publish answers ErrUnavailable
// until then.
func open(nc *nats.Conn, mode, where, streamName string, maxBytes int64, replicas int, ackWait time.Duration, expectExisting bool, log *slog.Logger) (*Bus, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("%s: jetstream: %w", where, err)
	}
	b := &Bus{mode: mode, where: where, log: log, nc: nc, js: js, name: streamName,
		prefix: strings.ToLower(streamName), maxBytes: maxBytes, ackWait: ackWait, replicas: replicas,
		queues: map[string]*queue{}, closed: make(chan struct{})}
	if !nc.IsConnected() {
		log.Warn("NATS unreachable at start; the inputs answer 503 until the stream is set up", "server", where)
		go b.setUpLater()
		b.batch = newBatcher(b)
		go b.batch.run()
		return b, nil
	}
	if err := b.setUpStream(expectExisting); err != nil {
		return nil, err
	}
	b.ready.Store(true)
	b.batch = newBatcher(b)
	go b.batch.run()
	return b, nil
}

// setUpLater retries the stream's and the consumers' set-up until it succeeds or the bus
// closes.
func (b *Bus) setUpLater() {
	var logged time.Time
	for {
		select {
		case <-b.closed:
			return
		case <-time.After(500 * time.Millisecond):
		}
		if !b.nc.IsConnected() {
			if time.Since(logged) > 30*time.Second {
				logged = time.Now()
				b.log.Warn("durable bus: NATS still unreachable; the inputs answer 503", "server", b.where, "err", b.nc.LastError())
			}
			continue
		}
		err := b.setUpStream(false)
		if err == nil {
			b.mu.Lock()
			for _, q := range b.queues {
				if q.msgs == nil {
					if err = b.startConsumer(q); err != nil {
						break
					}
				}
			}
			if err == nil {
				b.ready.Store(true)
			}
			removed := b.removed
			b.mu.Unlock()
			if err == nil && removed != nil {
				b.removeUndeclared(removed)
			}
		}
		if err == nil {
			b.log.Info("durable bus set up", "server", b.where, "stream", b.name)
			return
		}
		if time.Since(logged) > 30*time.Second {
			logged = time.Now()
			b.log.Error("durable bus: cannot set up the stream; the inputs answer 503", "err", err)
		}
	}
}

// setUpStream creates the stream or checks the existing one.
func (b *Bus) setUpStream(expectExisting bool) error {
	want := jetstream.StreamConfig{
		Name:        b.name,
		Description: "saker: events accepted and not yet delivered by every output they were routed to",
		Subjects:    []string{b.prefix + ".out.>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    b.maxBytes,
		Duplicates:  2 * time.Minute,
		Replicas:    b.replicas,
	}
	where, streamName, js := b.where, b.name, b.js
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, streamName)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if expectExisting {
			return fmt.Errorf("%s holds stream %s but the NATS server could not load it (see its log above): "+
				"saker does not start empty over it; move the directory aside to start with an empty spool", where, streamName)
		}
		st, err = js.CreateStream(ctx, want)
		if err != nil {
			return fmt.Errorf("%s: create stream %s: %w", where, streamName, err)
		}
	case err != nil:
		return fmt.Errorf("%s: look up stream %s: %w", where, streamName, err)
	default:
		have := st.CachedInfo().Config
		if reason := incompatible(have, want); reason != "" {
			fix := "use another bus.jetstream.stream or remove it once it is drained"
			if b.mode == "embedded" {
				fix = "move the directory aside to start with an empty spool, and drain it with a NATS server pointed at it"
			}
			return fmt.Errorf("%s: stream %s was created with other settings (%s): saker does not change or delete it; %s",
				where, streamName, reason, fix)
		}
		if have.MaxBytes != want.MaxBytes || have.Replicas != want.Replicas {
			have.MaxBytes, have.Replicas = want.MaxBytes, want.Replicas
			if st, err = js.UpdateStream(ctx, have); err != nil {
				return fmt.Errorf("%s: resize stream %s to %d bytes: %w", where, streamName, b.maxBytes, err)
			}
		}
	}
	b.infoMu.Lock()
	b.stream = st
	b.infoMu.Unlock()
	return nil
}

// incompatible says why an existing stream cannot serve as saker's, or "".
func incompatible(have, want jetstream.StreamConfig) string {
	switch {
	case have.Retention != want.Retention:
		return fmt.Sprintf("retention %s, saker needs %s", have.Retention, want.Retention)
	case have.Storage != want.Storage:
		return fmt.Sprintf("storage %s, saker needs %s", have.Storage, want.Storage)
	case len(have.Subjects) != 1 || have.Subjects[0] != want.Subjects[0]:
		return fmt.Sprintf("subjects %v, saker needs %v", have.Subjects, want.Subjects)
	case have.Discard != want.Discard:
		return fmt.Sprintf("discard policy %s, saker needs %s", have.Discard, want.Discard)
	}
	return ""
}

// token turns an output name into a subject token and consumer name.
func token(name string) string {
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			return c
		}
		return '_'
	}, name)
}

// AddOutput creates (or reuses) the output's durable consumer and starts pulling from it.
// The consumer outlives the process: a restart, or another replica, resumes where it stopped.
func (b *Bus) AddOutput(name string, p delivery.Policy) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.queues[name]; dup {
		return fmt.Errorf("output %s declared twice", name)
	}
	q := &queue{name: name, subject: b.prefix + ".out." + token(name), policy: p, ready: make(chan *message)}
	b.queues[name] = q
	if !b.ready.Load() {
		return nil // set up with the stream, once NATS is reachable
	}
	return b.startConsumer(q)
}

// startConsumer creates q's consumer and its pump; b.mu is held.
func (b *Bus) startConsumer(q *queue) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.infoMu.Lock()
	stream := b.stream
	b.infoMu.Unlock()
	cfg := b.consumerConfig(q.name, q.subject, q.policy)
	cons, err := stream.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	if pending := cons.CachedInfo().NumAckPending; b.mode == "embedded" && pending > 0 {
		if err := b.releaseDeadHolder(ctx, stream, q.name, cfg, pending); err != nil {
			return fmt.Errorf("%s: consumer for output %s: %w", b.where, q.name, err)
		}
	}
	// A small prefetch: events pulled but not handed to a worker are not kept alive, so a
	// worker stuck retrying must not sit on many of them.
	prefetch := q.policy.MaxConcurrentRequests*max(q.policy.Batch.MaxEvents, 1) + 1
	msgs, err := cons.Messages(jetstream.PullMaxMessages(min(prefetch, 1000)), jetstream.PullHeartbeat(5*time.Second))
	if err != nil {
		return fmt.Errorf("%s: pull from consumer of output %s: %w", b.where, q.name, err)
	}
	q.mu.Lock()
	q.cons = cons
	q.mu.Unlock()
	q.msgs = msgs
	b.pumps.Add(1)
	go func() {
		defer b.pumps.Done()
		b.pump(q)
	}()
	return nil
}

// releaseWait is how long releaseDeadHolder leaves the server with a tiny ack wait: the
// server checks its pending events 100ms after the ack wait changed.
const releaseWait = 400 * time.Millisecond

// releaseDeadHolder makes the events an earlier process took from an embedded spool's
// consumer and never settled (it was killed) due for delivery now rather than one ack wait
// after that process took them. Only saker consumes the embedded server's consumers and
// only one saker opens a spool, so every unsettled event of a consumer found at start
// belonged to a dead process. Nothing pulls yet: the server expires them all under a
// 1ms ack wait, queues them for redelivery (each delivery counted, so
// retry.maxdeliveries still catches an event that kills saker), and the configured ack wait
// is put back before the first pull. Deleting and recreating the consumer would also hand
// them out at once (a work queue keeps unacknowledged events) but would reset those counts.
func (b *Bus) releaseDeadHolder(ctx context.Context, stream jetstream.Stream, output string, cfg jetstream.ConsumerConfig, pending int) error {
	b.log.Info("durable bus: events taken by a process that did not stop cleanly are delivered again now",
		"output", output, "events", pending)
	fast := cfg
	fast.AckWait = time.Millisecond
	if _, err := stream.UpdateConsumer(ctx, fast); err != nil {
		return fmt.Errorf("release the events of the previous process: %w", err)
	}
	select {
	case <-time.After(releaseWait):
	case <-b.closed:
	}
	if _, err := stream.UpdateConsumer(ctx, cfg); err != nil {
		return fmt.Errorf("restore the ack wait after releasing the events of the previous process: %w", err)
	}
	return nil
}

// consumerConfig is output name's durable consumer, for policy p.
func (b *Bus) consumerConfig(name, subject string, p delivery.Policy) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       token(name),
		Description:   consumerPrefix + name,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.ackWait,
		MaxDeliver:    -1,          // the engine's retry policy decides when to give up
		MaxAckPending: p.QueueSize, // unsettled events across every replica
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// UpdateOutput applies a rebuilt output's queue size to its durable consumer, which carries
// over with what it stores and what is being delivered.
func (b *Bus) UpdateOutput(name string, p delivery.Policy) error {
	b.mu.RLock()
	q, ok := b.queues[name]
	var started bool
	var prev delivery.Policy
	if ok {
		started, prev = q.msgs != nil, q.policy
	}
	b.mu.RUnlock()
	if !ok {
		return fmt.Errorf("unknown output %q", name)
	}
	// Outside the lock: publishing goes on while the server updates the consumer.
	if started && p.QueueSize != prev.QueueSize {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.infoMu.Lock()
		stream := b.stream
		b.infoMu.Unlock()
		if _, err := stream.UpdateConsumer(ctx, b.consumerConfig(q.name, q.subject, p)); err != nil {
			return fmt.Errorf("%s: consumer for output %s: %w", b.where, q.name, err)
		}
	}
	b.mu.Lock()
	q.policy = p
	b.mu.Unlock()
	return nil
}

// RemoveOutput stops pulling for a drained output. The embedded spool's consumer is deleted
// (only this process uses it, and it holds nothing); an external one stays, as another
// replica may still run the output: a start that finds it unused removes it
// (RemoveUndeclared).
func (b *Bus) RemoveOutput(name string) {
	b.mu.Lock()
	q, ok := b.queues[name]
	delete(b.queues, name)
	b.mu.Unlock()
	if !ok || q.msgs == nil {
		return
	}
	q.msgs.Stop()
	if b.mode != "embedded" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.infoMu.Lock()
	stream := b.stream
	b.infoMu.Unlock()
	if err := stream.DeleteConsumer(ctx, token(name)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		b.log.Warn("durable bus: deleting the consumer of a removed output; the next start removes it", "output", name, "err", err)
	}
}

// Drained reports whether the output's consumer has nothing pending or unacknowledged, across
// every replica; false when that cannot be told (NATS unreachable).
func (b *Bus) Drained(name string) bool {
	b.mu.RLock()
	q, ok := b.queues[name]
	b.mu.RUnlock()
	if !ok {
		return true
	}
	q.mu.Lock()
	cons := q.cons
	q.mu.Unlock()
	if cons == nil || !b.nc.IsConnected() {
		return cons == nil && b.ready.Load()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := cons.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

// pump hands q's messages to the workers one at a time, until the iterator is stopped.
func (b *Bus) pump(q *queue) {
	for {
		msg, err := q.msgs.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			q.mu.Lock()
			if time.Since(q.errLog) > 30*time.Second {
				q.errLog = time.Now()
				b.log.Warn("durable bus: pulling events", "output", q.name, "err", err)
			}
			q.mu.Unlock()
			select {
			case <-b.closed:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		q.lastReply = msg.Reply()
		sm, err := b.decode(msg)
		if err != nil {
			// Only saker writes these subjects, so this is a corrupted or foreign message:
			// retrying cannot fix it.
			b.log.Error("durable bus: undecodable stored event dropped", "output", q.name, "subject", msg.Subject(), "err", err)
			_ = msg.Term()
			continue
		}
		for _, m := range sm.parts {
			select {
			case <-b.closed:
				m.Requeue() // the iterator is draining: release what it still buffers
				continue
			default:
			}
			select {
			case q.ready <- m:
			case <-b.closed:
				m.Requeue()
			}
		}
	}
}

// decode rebuilds the events of a stored message and starts extending its ack deadline.
func (b *Bus) decode(msg jetstream.Msg) (*storedMsg, error) {
	evs, err := decodeStored(msg.Data(), msg.Headers())
	if err != nil {
		return nil, err
	}
	sm := &storedMsg{b: b, msg: msg, ackWait: b.ackWait, deliveries: 1, left: len(evs)}
	if md, err := msg.Metadata(); err == nil {
		sm.deliveries = int(md.NumDelivered)
	}
	sm.parts = make([]*message, len(evs))
	for i, ev := range evs {
		sm.parts[i] = &message{sm: sm, ev: ev}
	}
	sm.mu.Lock()
	sm.timer = time.AfterFunc(sm.ackWait/3, sm.keepAlive)
	sm.mu.Unlock()
	return sm, nil
}

// storedMsg is one stored message (an event, or a batch of them) being delivered to an
// output: it is acknowledged once each of its events is settled.
type storedMsg struct {
	b          *Bus
	msg        jetstream.Msg
	parts      []*message
	deliveries int
	ackWait    time.Duration

	mu       sync.Mutex
	timer    *time.Timer // fires keepAlive every ackWait/3 until the message is settled
	left     int         // events not settled yet
	requeued []*event.Event
}

// keepAlive tells the server the message is still being worked on (the engine may retry its
// events for minutes), so it is not handed to another worker meanwhile. It runs on a timer
// rather than in a goroutine of its own: most messages are settled long before the first
// tick.
func (sm *storedMsg) keepAlive() {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.left == 0 {
		return
	}
	_ = sm.msg.InProgress()
	sm.timer.Reset(sm.ackWait / 3)
}

// settle records that one event is settled; the last one answers the server: acknowledged
// when every event was settled for good, released (Nak) when every one is left for later,
// and when only some are, those are stored again before the message is acknowledged.
func (sm *storedMsg) settle(m *message, requeue bool) {
	sm.mu.Lock()
	if m.settled {
		sm.mu.Unlock()
		return
	}
	m.settled = true
	if requeue {
		sm.requeued = append(sm.requeued, m.ev)
	}
	sm.left--
	if sm.left > 0 {
		sm.mu.Unlock()
		return
	}
	sm.timer.Stop()
	requeued := sm.requeued
	sm.mu.Unlock()
	switch {
	case len(requeued) == 0:
		sm.ack()
	case len(requeued) == len(sm.parts):
		_ = sm.msg.Nak()
	default:
		if err := sm.b.storeAgain(sm.msg.Subject(), requeued); err != nil {
			sm.b.log.Warn("durable bus: storing the undelivered events of a batch apart failed; the whole batch is delivered again",
				"subject", sm.msg.Subject(), "events", len(sm.parts), "undelivered", len(requeued), "err", err)
			_ = sm.msg.Nak()
			return
		}
		sm.ack()
	}
}

// ack acknowledges the message without waiting: Shutdown makes sure the server applied
// every acknowledgement before it stops (applyAcks).
func (sm *storedMsg) ack() { _ = sm.msg.Ack() }

// message is one stored event handed to a worker.
type message struct {
	sm      *storedMsg
	ev      *event.Event
	settled bool // under sm.mu
}

func (m *message) Event() *event.Event { return m.ev }
func (m *message) Deliveries() int     { return m.sm.deliveries }

// Done settles the event: this output is finished with it.
func (m *message) Done() { m.sm.settle(m, false) }

// Requeue leaves the event to the server for a later delivery.
func (m *message) Requeue() { m.sm.settle(m, true) }

// Publish stores ev once per output, on the output's subject, and returns once the stream
// acknowledged every copy. An event saker gave its UUID is stored in a batch (batch.go);
// each copy of an event that came with its UUID is a batch of its own with Nats-Msg-Id =
// uuid/output, so a publish retried after a partial failure (the input answered 503, the
// client posted again) stores nothing twice within the stream's duplicate window.
func (b *Bus) Publish(ctx context.Context, ev *event.Event, outputs []string) (delivery.PublishResult, error) {
	var res delivery.PublishResult
	select {
	case <-b.closed:
		return res, delivery.ErrClosed
	default:
	}
	if !b.nc.IsConnected() {
		return res, fmt.Errorf("%w: NATS connection %s (%s)", delivery.ErrUnavailable, strings.ToLower(b.nc.Status().String()), b.where)
	}
	if !b.ready.Load() {
		return res, fmt.Errorf("%w: stream %s not set up yet on %s", delivery.ErrUnavailable, b.name, b.where)
	}
	subjects := make([]string, len(outputs))
	b.mu.RLock()
	for i, name := range outputs {
		q, ok := b.queues[name]
		if !ok {
			b.mu.RUnlock()
			return res, fmt.Errorf("unknown output %q", name)
		}
		subjects[i] = q.subject
	}
	b.mu.RUnlock()
	f := b.batch.add(ev, outputs, subjects)
	select {
	case <-f.stored:
	case <-ctx.Done():
		return res, fmt.Errorf("publish: %w", ctx.Err())
	}
	if f.closed {
		return res, delivery.ErrClosed
	}
	if name, err := f.err(outputs); err != nil {
		return res, b.publishError(name, err)
	}
	return res, nil
}

// publishError classifies a failed publish: a full stream is the output's queue being full
// (a FullError whatever whenfull says: the input answers 503); anything else means the store
// is unavailable.
func (b *Bus) publishError(output string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errStreamStoreFailed, errInsufficientResources, errStorageResourcesExceeded:
			b.log.Debug("durable bus full", "output", output, "err", err)
			return &delivery.FullError{Output: output}
		}
	}
	if strings.Contains(err.Error(), "maximum bytes exceeded") {
		return &delivery.FullError{Output: output}
	}
	if errors.Is(err, errPublishTimeout) {
		return fmt.Errorf("%w: %s did not confirm storing the event for %s within %s", delivery.ErrUnavailable, b.where, output, publishTimeout)
	}
	return fmt.Errorf("%w: storing the event for %s in %s: %v", delivery.ErrUnavailable, output, b.where, err)
}

// Receive hands out output's next stored event. Once the bus is closed it returns ErrClosed
// at once: what is stored stays stored.
func (b *Bus) Receive(ctx context.Context, output string) (delivery.Delivery, error) {
	b.mu.RLock()
	q, ok := b.queues[output]
	b.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown output %q", output)
	}
	select {
	case <-b.closed:
		return nil, delivery.ErrClosed
	default:
	}
	select {
	case m := <-q.ready:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.closed:
		return nil, delivery.ErrClosed
	}
}

// Depth is the number of events stored for output and not acknowledged yet, across every
// replica (refreshed at most once a second).
func (b *Bus) Depth(output string) int {
	b.mu.RLock()
	q, ok := b.queues[output]
	b.mu.RUnlock()
	if !ok {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if time.Since(q.at) < time.Second || !b.nc.IsConnected() || q.cons == nil {
		return q.depth
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := q.cons.Info(ctx)
	q.at = time.Now()
	if err == nil {
		q.depth = int(info.NumPending) + info.NumAckPending
	}
	return q.depth
}

// Close stops Publish and Receive; the consumers release what they prefetched.
func (b *Bus) Close() {
	b.closeOnce.Do(func() {
		close(b.closed)
		b.mu.RLock()
		for _, q := range b.queues {
			if q.msgs != nil {
				q.msgs.Drain()
			}
		}
		b.mu.RUnlock()
	})
}

// consumerPrefix starts the description of every consumer saker creates; what follows is
// the output's name.
const consumerPrefix = "saker output "

// RemoveUndeclared deletes the consumers of outputs no longer configured, once every output
// was added. With work-queue retention an event leaves the stream only when its output
// acknowledges it, so the events stored for a removed output would hold the stream's space
// forever: each is handed to removed (the engine dead-letters it, so it can be replayed),
// then deleted. In external mode a consumer another replica still pulls from (a rolling
// update whose replicas disagree on the outputs) is left alone; a replica starting once no
// replica has the output any more removes it. A replica whose every worker is busy has no
// pull waiting either: the events it holds are then dead-lettered by the newcomer and its
// acknowledgements fail, which is a duplicate in the dead letter, never a loss.
func (b *Bus) RemoveUndeclared(removed func(output string, ev *event.Event)) {
	b.mu.Lock()
	b.removed = removed
	b.mu.Unlock()
	if b.ready.Load() {
		b.removeUndeclared(removed)
	}
}

func (b *Bus) removeUndeclared(removed func(output string, ev *event.Event)) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.infoMu.Lock()
	stream := b.stream
	b.infoMu.Unlock()
	b.mu.RLock()
	declared := map[string]bool{}
	for _, q := range b.queues {
		declared[token(q.name)] = true
	}
	b.mu.RUnlock()
	var stale []*jetstream.ConsumerInfo
	list := stream.ListConsumers(ctx)
	for info := range list.Info() {
		if declared[info.Name] || !strings.HasPrefix(info.Config.Description, consumerPrefix) ||
			!strings.HasPrefix(info.Config.FilterSubject, b.prefix+".out.") {
			continue
		}
		if b.mode == "external" && info.NumWaiting > 0 {
			b.log.Info("durable bus: output not configured here but still delivered by another replica; its consumer is kept",
				"output", strings.TrimPrefix(info.Config.Description, consumerPrefix))
			continue
		}
		stale = append(stale, info)
	}
	if err := list.Err(); err != nil {
		b.log.Error("durable bus: listing the consumers of outputs no longer configured", "err", err)
		return
	}
	for _, info := range stale {
		output := strings.TrimPrefix(info.Config.Description, consumerPrefix)
		if err := b.removeOutput(ctx, stream, info.Name, output, info.Config.FilterSubject, removed); err != nil {
			b.log.Error("durable bus: removing the events of an output no longer configured", "output", output, "err", err)
		}
	}
}

// removeOutput deletes one removed output's consumer, then hands out and purges the events
// stored for it.
func (b *Bus) removeOutput(ctx context.Context, stream jetstream.Stream, consumer, output, subject string, removed func(string, *event.Event)) error {
	if err := stream.DeleteConsumer(ctx, consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete consumer %s: %w", consumer, err)
	}
	n := 0
	var seq uint64
	for {
		msg, err := stream.GetMsg(ctx, seq+1, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("read the events stored for it: %w", err)
		}
		seq = msg.Sequence
		evs, err := decodeStored(msg.Data, msg.Header)
		if err != nil {
			b.log.Error("durable bus: undecodable stored event dropped", "output", output, "subject", subject, "err", err)
			continue
		}
		for _, ev := range evs {
			removed(output, ev)
		}
		n += len(evs)
	}
	if seq > 0 {
		// Only what was read: up to (not including) the sequence after the last one.
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(seq+1)); err != nil {
			return fmt.Errorf("purge the %d events stored for it: %w", n, err)
		}
	}
	b.log.Warn("durable bus: output no longer configured; its consumer and the events stored for it are removed (written to deadletter.path when set)",
		"output", output, "events", n)
	return nil
}

// applyAcks waits until the server applied the acknowledgements sent so far. A consumer
// queues them and applies them on its own goroutine, and a stopping server drops what is
// queued: the embedded spool's server stops with saker, so without this wait a message
// acknowledged just before a shutdown was delivered again after the restart. One "in
// progress" request per consumer, on the subject of the last message it took, goes through
// the same queue and is answered once it was applied, so every acknowledgement sent before
// it was too. Called once the pumps stopped.
func (b *Bus) applyAcks() {
	b.mu.RLock()
	var replies []string
	for _, q := range b.queues {
		if q.lastReply != "" {
			replies = append(replies, q.lastReply)
		}
	}
	b.mu.RUnlock()
	for _, reply := range replies {
		if _, err := b.nc.Request(reply, []byte("+WPI"), 2*time.Second); err != nil && b.nc.IsConnected() {
			b.log.Debug("durable bus: acknowledgements not confirmed before stopping; a few events may be delivered again", "err", err)
		}
	}
}

// Durable is true: what is not delivered stays in the stream.
func (b *Bus) Durable() bool { return true }

// State reports the connection and the stream's size (refreshed at most once a second).
func (b *Bus) State() delivery.BusState {
	st := delivery.BusState{Mode: b.mode, Connected: b.nc.IsConnected(), MaxBytes: b.maxBytes}
	b.infoMu.Lock()
	defer b.infoMu.Unlock()
	if st.Connected && b.stream == nil {
		st.Error = "stream " + b.name + " not set up yet"
		return st
	}
	if st.Connected && time.Since(b.infoAt) >= time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := b.stream.Info(ctx)
		cancel()
		b.infoAt = time.Now()
		b.infoErr = err
		if err == nil {
			b.info = info
		}
	}
	if !st.Connected {
		st.Error = "NATS connection " + strings.ToLower(b.nc.Status().String()) + " (" + b.where + ")"
	} else if b.infoErr != nil {
		st.Error = b.infoErr.Error()
	}
	if b.info != nil {
		st.StoredBytes, st.StoredEvents = b.info.State.Bytes, b.info.State.Msgs
	}
	return st
}

// Shutdown runs after the engine stopped: it waits for the consumers to release what they
// prefetched, flushes the acknowledgements and closes the connection (and the embedded
// server, which syncs the spool).
func (b *Bus) Shutdown() {
	b.Close()
	done := make(chan struct{})
	go func() {
		b.pumps.Wait()
		close(done)
	}()
	select {
	case <-done:
		b.applyAcks()
	case <-time.After(5 * time.Second):
		b.log.Warn("durable bus: consumers did not stop within 5s; their events are redelivered after the ack wait", "ackwait", b.ackWait)
		b.mu.RLock()
		for _, q := range b.queues {
			if q.msgs != nil {
				q.msgs.Stop()
			}
		}
		b.mu.RUnlock()
	}
	select {
	case <-b.batch.done: // what the inputs were still storing is stored
	case <-time.After(publishTimeout):
	}
	if err := b.nc.FlushTimeout(2 * time.Second); err != nil && b.nc.IsConnected() {
		b.log.Warn("durable bus: flushing acknowledgements", "err", err)
	}
	b.nc.Close()
	if b.shutdown != nil {
		b.shutdown()
	}
}
