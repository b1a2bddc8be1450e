package jetstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/saker-dev/saker/engine/event"
)

// Events are stored in batches: the events published while the previous batch was being
// stored go together, one message per output. JetStream's cost is per message (publish,
// store, acknowledgement of the publish, delivery, acknowledgement of the delivery: about
// 60µs of CPU, and an fsync each with spool.sync=always), so under load a batch of n events
// costs about what one event did, while a lone event is stored at once as before. Only
// events saker gave their UUID are batched: an event that came with its UUID is a batch of
// its own with Nats-Msg-Id = uuid/output, so that a client retrying it is not stored twice
// (the stream's duplicate check is per message).
//
// An output acknowledges a batch once it settled every event of it. When the engine leaves
// some of them for later (at shutdown) and delivered the others, those are stored again as a
// new batch before the old one is acknowledged, so no delivered event comes back; if that
// fails the whole batch is redelivered (duplicates, never a loss). Killed mid-batch, saker
// redelivers the whole batch after the restart: the duplicates are counted as redeliveries.

// batchHeader marks a message holding a batch; its value is the number of events.
const batchHeader = "Saker-Batch"

// Bounds of one batch: a batch redelivered whole is at most this much duplicated work. A
// batch also stays under half the server's max_payload (a NATS server may be configured with
// less than its 1 MiB default).
const (
	maxBatchEvents = 256
	maxBatchBytes  = 512 << 10
)

// batchLimit is the most bytes a batch may hold on this connection.
func (bt *batcher) batchLimit() int {
	if mp := bt.b.nc.MaxPayload(); mp > 0 && int(mp/2) < maxBatchBytes {
		return int(mp / 2)
	}
	return maxBatchBytes
}

// appendBatched appends ev to a batch's body: its acceptance time (unix nanoseconds, 0 when
// unknown), then its Falco JSON, length first.
func appendBatched(dst []byte, ev *event.Event) []byte {
	var received int64
	if !ev.Received.IsZero() {
		received = ev.Received.UnixNano()
	}
	data := ev.JSON()
	dst = binary.AppendVarint(dst, received)
	dst = binary.AppendUvarint(dst, uint64(len(data)))
	return append(dst, data...)
}

// decodeStored rebuilds the events of a stored message: a batch, or (without batchHeader) a
// single event, its acceptance time in receivedHeader.
func decodeStored(data []byte, h nats.Header) ([]*event.Event, error) {
	count := h.Get(batchHeader)
	if count == "" {
		ev, err := event.DecodeStored(data)
		if err != nil {
			return nil, err
		}
		if ns, err := strconv.ParseInt(h.Get(receivedHeader), 10, 64); err == nil {
			ev.Received = time.Unix(0, ns)
		}
		return []*event.Event{ev}, nil
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 || n > len(data) {
		return nil, fmt.Errorf("batch header %s=%q: not an event count", batchHeader, count)
	}
	evs := make([]*event.Event, 0, n)
	for i := 0; i < n; i++ {
		received, k := binary.Varint(data)
		if k <= 0 {
			return nil, fmt.Errorf("event %d of %d: truncated batch", i+1, n)
		}
		data = data[k:]
		size, k := binary.Uvarint(data)
		if k <= 0 || size > uint64(len(data)-k) {
			return nil, fmt.Errorf("event %d of %d: truncated batch", i+1, n)
		}
		// A full slice expression: nothing appended to an event's JSON can reach the next.
		body := data[k : k+int(size) : k+int(size)]
		data = data[k+int(size):]
		ev, err := event.DecodeStored(body)
		if err != nil {
			return nil, fmt.Errorf("event %d of %d: %w", i+1, n, err)
		}
		if received != 0 {
			ev.Received = time.Unix(0, received)
		}
		evs = append(evs, ev)
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("%d bytes after the %d events of the batch", len(data), n)
	}
	return evs, nil
}

// batcher stores the events handed to it in batches, one batch in the air at a time: what
// arrives meanwhile waits for the next.
type batcher struct {
	b    *Bus
	wake chan struct{}
	done chan struct{}

	mu      sync.Mutex
	queue   []*flight // waiting to be stored, oldest first; only the last one still grows
	stopped bool      // run returned: add refuses
}

// flight is one batch: a message for each output its events were routed to.
type flight struct {
	parts  []flightPart
	events int
	size   int
	alone  bool          // an event that came with its UUID: nothing joins it
	stored chan struct{} // closed once every part was stored or refused
	closed bool          // refused whole: the bus is closed
}

type flightPart struct {
	output, subject string
	msgID           string // Nats-Msg-Id, for an event stored alone
	n               int
	body            []byte
	err             error
}

// newBatcher returns b's batcher; go run() starts it.
func newBatcher(b *Bus) *batcher {
	return &batcher{b: b, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// add queues ev for the given outputs (and their subjects) and returns its flight, whose
// stored channel closes once the batch was stored.
func (bt *batcher) add(ev *event.Event, outputs, subjects []string) *flight {
	size := len(ev.JSON()) + 2*binary.MaxVarintLen64
	limit := bt.batchLimit()
	bt.mu.Lock()
	if bt.stopped {
		// The bus closed after Publish checked: nothing will store this.
		bt.mu.Unlock()
		f := &flight{stored: make(chan struct{}), closed: true}
		close(f.stored)
		return f
	}
	alone := ev.UUID != "" && !ev.UUIDAssigned
	var f *flight
	if n := len(bt.queue); n > 0 && !alone {
		f = bt.queue[n-1]
		if f.alone || f.events >= maxBatchEvents || f.size+size*len(outputs) > limit {
			f = nil
		}
	}
	if f == nil {
		f = &flight{stored: make(chan struct{}), alone: alone}
		bt.queue = append(bt.queue, f)
	}
	f.events++
	f.size += size * len(outputs)
	for i, name := range outputs {
		p := f.part(name, subjects[i])
		p.body = appendBatched(p.body, ev)
		p.n++
		if alone {
			p.msgID = ev.UUID + "/" + name
		}
	}
	bt.mu.Unlock()
	select {
	case bt.wake <- struct{}{}:
	default:
	}
	return f
}

func (f *flight) part(output, subject string) *flightPart {
	for i := range f.parts {
		if f.parts[i].output == output {
			return &f.parts[i]
		}
	}
	f.parts = append(f.parts, flightPart{output: output, subject: subject})
	return &f.parts[len(f.parts)-1]
}

// err is the first refusal among outputs' parts, once stored closed.
func (f *flight) err(outputs []string) (string, error) {
	for _, name := range outputs {
		for i := range f.parts {
			if f.parts[i].output == name && f.parts[i].err != nil {
				return name, f.parts[i].err
			}
		}
	}
	return "", nil
}

// run stores what is queued, all together, then what queued meanwhile. Once the bus is
// closed it stores what is still queued (the inputs wait for it) and stops.
func (bt *batcher) run() {
	defer close(bt.done)
	for {
		for {
			bt.mu.Lock()
			flights := bt.queue
			bt.queue = nil
			bt.mu.Unlock()
			if len(flights) == 0 {
				break
			}
			bt.store(flights)
		}
		select {
		case <-bt.wake:
		case <-bt.b.closed:
			bt.mu.Lock()
			bt.stopped = len(bt.queue) == 0
			bt.mu.Unlock()
			if bt.stopped {
				return
			}
		}
	}
}

// store publishes the flights' messages together and waits for the stream to confirm each;
// what is not confirmed within publishTimeout is refused.
func (bt *batcher) store(flights []*flight) {
	type pending struct {
		part *flightPart
		fut  jetstream.PubAckFuture
	}
	var sent []pending
	for _, f := range flights {
		for i := range f.parts {
			p := &f.parts[i]
			var opts []jetstream.PublishOpt
			if p.msgID != "" {
				opts = append(opts, jetstream.WithMsgID(p.msgID))
			}
			fut, err := bt.b.js.PublishMsgAsync(batchMsg(p.subject, p.body, p.n), opts...)
			if p.err = err; err == nil {
				sent = append(sent, pending{p, fut})
			}
		}
	}
	timer := time.NewTimer(publishTimeout)
	defer timer.Stop()
	expired := false
	for _, s := range sent {
		if expired {
			s.part.err = errPublishTimeout
			continue
		}
		select {
		case <-s.fut.Ok():
		case err := <-s.fut.Err():
			s.part.err = err
		case <-timer.C:
			expired = true
			s.part.err = errPublishTimeout
		}
	}
	for _, f := range flights {
		close(f.stored)
	}
}

// batchMsg is the message storing a batch of n events for subject.
func batchMsg(subject string, body []byte, n int) *nats.Msg {
	return &nats.Msg{Subject: subject, Data: body, Header: nats.Header{batchHeader: []string{strconv.Itoa(n)}}}
}

// errPublishTimeout: the stream did not confirm a publish within publishTimeout.
var errPublishTimeout = errors.New("no confirmation within " + publishTimeout.String())

// storeAgain stores evs as a new batch on subject, waiting for the stream's confirmation.
func (b *Bus) storeAgain(subject string, evs []*event.Event) error {
	var body []byte
	for _, ev := range evs {
		body = appendBatched(body, ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	_, err := b.js.PublishMsg(ctx, batchMsg(subject, body, len(evs)))
	return err
}
