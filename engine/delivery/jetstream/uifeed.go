package jetstream

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/saker-dev/saker/engine/event"
)

// LocalStore is a replica's own web UI store, as the feed fills it.
type LocalStore interface {
	Offer(ev *event.Event, outputs []string) bool
	// Newest is when the most recent stored event was stored; false when none is.
	Newest() (time.Time, bool)
	// Has reports whether the event with that uuid is stored.
	Has(uuid string) bool
}

// UIRetention bounds the feed's stream as the UI bounds its store.
type UIRetention struct {
	MaxAge    time.Duration
	MaxEvents int
}

// UIFeed gives every replica's web UI every alert any replica accepted. Behind one Service each
// replica's inputs take a share of the events, and the delivery stream hands each event to
// one replica per output, so neither shows a replica the whole picture. The feed is a second
// stream, bounded like the UI store (by age and count, oldest discarded): each replica
// publishes what it accepts and reads the whole stream back into its own store through an
// ordered consumer, starting where its store stopped, so a restarted replica (or a new one)
// catches up.
//
// The feed is for viewing, not for delivery: a publish is not waited for (the input does not
// slow down for the UI), and one the server refused is counted in Failed.
type UIFeed struct {
	b       *Bus
	js      jetstream.JetStream
	local   LocalStore
	stream  string
	subject string
	keep    UIRetention

	ready  atomic.Bool
	failed atomic.Uint64
	// overlapUntil: messages the server stored up to then may already be in the local store
	// (the consumer starts a little before the newest stored event); they are checked.
	overlapUntil time.Time

	mu   sync.Mutex
	cc   jetstream.ConsumeContext
	done chan struct{}
	once sync.Once
}

// outputsHeader lists the outputs an event was queued for, comma-separated.
const outputsHeader = "Saker-Outputs"

// feedOverlap is how far before its newest stored event a replica's store is read back
// into: events accepted just before a restart may not have reached the store yet.
const feedOverlap = 5 * time.Second

// FeedUI starts sharing alerts with the other replicas' UIs through the feed's stream, created
// on the bus's server next to the delivery stream (named after it, suffix _ui). Until the
// stream is set up (NATS unreachable), Offer stores events in local only.
func (b *Bus) FeedUI(local LocalStore, keep UIRetention) (*UIFeed, error) {
	f := &UIFeed{b: b, local: local, keep: keep, stream: b.name + "_ui", subject: b.prefix + ".ui",
		done: make(chan struct{})}
	js, err := jetstream.New(b.nc,
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			f.failed.Add(1)
			b.log.Debug("ui feed: publish refused", "err", err)
		}),
		jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("%s: jetstream: %w", b.where, err)
	}
	f.js = js
	go f.run()
	return f, nil
}

// run sets the feed up once NATS is reachable, retrying until it is or the feed closes.
func (f *UIFeed) run() {
	var logged time.Time
	for {
		err := f.setUp()
		if err == nil {
			return
		}
		if time.Since(logged) > 30*time.Second {
			logged = time.Now()
			f.b.log.Warn("ui feed: not set up yet; this replica's UI shows only its own events", "err", err)
		}
		select {
		case <-f.done:
			return
		case <-f.b.closed:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (f *UIFeed) setUp() error {
	if !f.b.nc.IsConnected() {
		return fmt.Errorf("%w: %s", nats.ErrNoServers, f.b.where)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	maxMsgs := int64(f.keep.MaxEvents)
	if maxMsgs <= 0 {
		maxMsgs = -1
	}
	st, err := f.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        f.stream,
		Description: "saker: every alert any replica accepted, for every replica's web UI",
		Subjects:    []string{f.subject},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      f.keep.MaxAge,
		MaxMsgs:     maxMsgs,
		Replicas:    f.b.replicas,
	})
	if err != nil {
		return fmt.Errorf("%s: stream %s: %w", f.b.where, f.stream, err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{f.subject}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if newest, ok := f.local.Newest(); ok {
		start := newest.Add(-feedOverlap)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
		f.overlapUntil = newest.Add(time.Second)
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%s: stream %s: consumer: %w", f.b.where, f.stream, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		return nil
	default:
	}
	cc, err := cons.Consume(f.receive)
	if err != nil {
		return fmt.Errorf("%s: stream %s: consume: %w", f.b.where, f.stream, err)
	}
	f.cc = cc
	f.ready.Store(true)
	f.b.log.Info("ui feed set up: this replica's UI shows every replica's events", "stream", f.stream)
	return nil
}

// receive stores one fed event in the local store.
func (f *UIFeed) receive(msg jetstream.Msg) {
	h := msg.Headers()
	evs, err := decodeStored(msg.Data(), h) // one event, its acceptance time in receivedHeader
	if err != nil || len(evs) != 1 {
		// Only saker publishes on the subject: a corrupted or foreign message.
		f.b.log.Error("ui feed: undecodable event skipped", "subject", msg.Subject(), "err", err)
		return
	}
	ev := evs[0]
	if md, err := msg.Metadata(); err == nil && !md.Timestamp.After(f.overlapUntil) && f.local.Has(ev.UUID) {
		return
	}
	var outputs []string
	if s := h.Get(outputsHeader); s != "" {
		outputs = strings.Split(s, ",")
	}
	f.local.Offer(ev, outputs)
}

// Offer publishes ev for every replica's UI, this one's included. It never waits for the
// server; before the feed is set up, or when the publish cannot even be sent, ev goes to the
// local store only.
func (f *UIFeed) Offer(ev *event.Event, outputs []string) bool {
	if !f.ready.Load() {
		return f.local.Offer(ev, outputs)
	}
	m := &nats.Msg{Subject: f.subject, Data: ev.JSON(), Header: nats.Header{
		receivedHeader: []string{strconv.FormatInt(ev.Received.UnixNano(), 10)},
		outputsHeader:  []string{strings.Join(outputs, ",")},
	}}
	if _, err := f.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Millisecond)); err != nil {
		f.failed.Add(1)
		return f.local.Offer(ev, outputs)
	}
	return true
}

// Failed is the number of events the feed could not publish (the local store kept those
// it could not send) or the server refused.
func (f *UIFeed) Failed() uint64 { return f.failed.Load() }

// Ready reports whether the feed is set up.
func (f *UIFeed) Ready() bool { return f.ready.Load() }

// Close stops reading the feed; call it before the local store closes.
func (f *UIFeed) Close() {
	f.once.Do(func() {
		close(f.done)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.ready.Store(false)
		if f.cc != nil {
			f.cc.Stop()
		}
	})
}
