package jetstream

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/testpeers"
)

// assignedEvent is event seq as intake makes it from a post without a UUID: saker's UUID, so
// the bus stores it in a batch.
func assignedEvent(seq int) *event.Event {
	ev := testEvent(seq)
	ev.UUIDAssigned = true
	return ev
}

func TestBatchCodec(t *testing.T) {
	received := time.Unix(1700000000, 123456789)
	a, b := assignedEvent(1), assignedEvent(2)
	a.Received, b.Received = received, time.Time{}
	body := appendBatched(appendBatched(nil, a), b)
	evs, err := decodeStored(body, nats.Header{batchHeader: []string{"2"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || string(evs[0].JSON()) != string(a.JSON()) || string(evs[1].JSON()) != string(b.JSON()) {
		t.Fatalf("decoded %d events: %v", len(evs), evs)
	}
	if !evs[0].Received.Equal(received) || !evs[1].Received.IsZero() {
		t.Fatalf("received times %v and %v, want %v and none", evs[0].Received, evs[1].Received, received)
	}
	// A message written before batching (and an event stored alone): the event's JSON, its
	// acceptance time in a header.
	evs, err = decodeStored(a.JSON(), nats.Header{receivedHeader: []string{strconv.FormatInt(received.UnixNano(), 10)}})
	if err != nil || len(evs) != 1 || evs[0].Rule != a.Rule || !evs[0].Received.Equal(received) {
		t.Fatalf("single event: %v, %v", evs, err)
	}
	for _, c := range []struct {
		name, count string
		body        []byte
		want        string
	}{
		{"count not a number", "two", body, "not an event count"},
		{"zero events", "0", body, "not an event count"},
		{"more events than stored", "3", body, "event 3 of 3: truncated"},
		{"fewer events than stored", "1", body, "bytes after the 1 events"},
		{"cut inside an event", "2", body[:len(body)-5], "event 2 of 2: truncated"},
		{"not an event", "1", appendBatched(nil, a)[:3], "truncated"},
		{"bad JSON", "1", append([]byte{0, 2}, "{x"...), "event 1 of 1"},
	} {
		if _, err := decodeStored(c.body, nats.Header{batchHeader: []string{c.count}}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func FuzzDecodeStored(f *testing.F) {
	ev := assignedEvent(1)
	f.Add(appendBatched(appendBatched(nil, ev), assignedEvent(2)), "2")
	f.Add(ev.JSON(), "")
	f.Add([]byte{0x80}, "1")
	f.Fuzz(func(t *testing.T, data []byte, count string) {
		h := nats.Header{}
		if count != "" {
			h.Set(batchHeader, count)
		}
		evs, err := decodeStored(data, h)
		if err == nil && len(evs) == 0 {
			t.Fatalf("no error and no event")
		}
	})
}

// Events published while a batch is being stored share one message per output, are
// delivered one by one, and the message is acknowledged once all of them are settled; the
// events a worker leaves for later (shutdown) are stored again on their own, so the ones
// delivered never come back.
func TestBatchedEventsShareAMessage(t *testing.T) {
	dir := t.TempDir()
	b := openSpoolWith(t, dir, "webhook", "slack")
	const n = 10
	publishHeld(t, b, n, []string{"webhook", "slack"}, assignedEvent)
	if msgs := streamMessages(t, b); msgs != 2 {
		t.Fatalf("stream holds %d messages, want one batch per output", msgs)
	}

	// slack: every event delivered and settled; the batch is acknowledged.
	seen := map[int]bool{}
	for range n {
		d, seq := receiveSeq(t, b, "slack")
		if d.Deliveries() != 1 || d.Event().Received.IsZero() {
			t.Fatalf("slack event %d: %d deliveries, received %v", seq, d.Deliveries(), d.Event().Received)
		}
		seen[seq] = true
		d.Done()
	}
	if len(seen) != n {
		t.Fatalf("slack got %v", seen)
	}
	// webhook: 7 delivered, 3 left for later.
	var later []int
	for i := range n {
		d, seq := receiveSeq(t, b, "webhook")
		if i%3 == 0 {
			later = append(later, seq)
			d.Requeue()
		} else {
			d.Done()
		}
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { return streamMessages(t, b) == 1 },
		"the batch was not acknowledged once the undelivered events were stored apart")
	var again []int
	var held delivery.Delivery
	for range later {
		d, seq := receiveSeq(t, b, "webhook")
		again = append(again, seq)
		if held == nil {
			held = d // taken and never settled: as if saker were killed
		} else {
			d.Done()
		}
	}
	if !slices.Equal(again, later) {
		t.Fatalf("webhook got %v again, want the events left for later %v", again, later)
	}
	b.Shutdown()

	// Killed with one event of a batch unsettled, the whole batch comes back (the others are
	// duplicates, counted as redeliveries); nothing acknowledged does.
	b = openSpoolWith(t, dir, "webhook", "slack")
	defer b.Shutdown()
	for _, want := range later {
		d, seq := receiveSeq(t, b, "webhook")
		if seq != want || d.Deliveries() != 2 {
			t.Fatalf("after restart webhook got event %d (delivery %d), want %d redelivered", seq, d.Deliveries(), want)
		}
		d.Done()
	}
	receiveNothing(t, b, "slack", "after acknowledging it")
}

// streamMessages is the number of messages b's stream holds.
func streamMessages(t *testing.T, b *Bus) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := b.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// publishHeld publishes events 0 to n-1 (made by newEvent) to outputs at once, through a batcher held until they
// all wait for it, so that they are stored together as far as the batch limits allow (the
// bus's own batcher stays idle until Shutdown stops it).
func publishHeld(t *testing.T, b *Bus, n int, outputs []string, newEvent func(int) *event.Event) {
	t.Helper()
	b.batch = newBatcher(b)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := b.Publish(context.Background(), newEvent(i), outputs)
			errs <- err
		})
	}
	testpeers.Eventually(t, 10*time.Second, func() bool {
		b.batch.mu.Lock()
		defer b.batch.mu.Unlock()
		queued := 0
		for _, f := range b.batch.queue {
			queued += f.events
		}
		return queued == n
	}, "the events did not queue")
	go b.batch.run()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

// A batch stays under half the server's max_payload: with a server allowing 4 KiB messages,
// 40 events go in several batches, every one stored and delivered.
func TestBatchFitsTheServersMaxPayload(t *testing.T) {
	port := testpeers.FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("max_payload: 4096\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := testpeers.Bin(t, "nats-server")
	testpeers.Start(t, "nats-server", []string{bin, "-c", conf, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dir},
		nil, func() bool { return testpeers.PortOpen(port) }, 20*time.Second)
	b := openExternal(t, port)
	defer b.Shutdown()
	if err := b.AddOutput("webhook", policy()); err != nil {
		t.Fatal(err)
	}
	const n = 40
	publishHeld(t, b, n, []string{"webhook"}, assignedEvent)
	size := len(assignedEvent(10).JSON())
	if msgs, least := streamMessages(t, b), uint64(n*size/2048); msgs < least || msgs >= n {
		t.Fatalf("%d events of %d bytes in %d messages, want batches of at most 2048 bytes (at least %d messages)", n, size, msgs, least)
	}
	seen := map[int]bool{}
	for range n {
		d, seq := receiveSeq(t, b, "webhook")
		seen[seq] = true
		d.Done()
	}
	if len(seen) != n {
		t.Fatalf("delivered %d distinct events of %d", len(seen), n)
	}
}

// An event handed to the batcher after it stopped (the bus closed between Publish's check and
// the hand-off) is refused at once, never left waiting.
func TestBatcherRefusesOnceStopped(t *testing.T) {
	b := openSpool(t, t.TempDir(), 0)
	defer b.Shutdown()
	if err := b.AddOutput("webhook", policy()); err != nil {
		t.Fatal(err)
	}
	b.Close()
	<-b.batch.done
	f := b.batch.add(assignedEvent(1), []string{"webhook"}, []string{"saker.out.webhook"})
	select {
	case <-f.stored:
	default:
		t.Fatal("the flight of a stopped batcher is left waiting")
	}
	if !f.closed {
		t.Fatal("the flight of a stopped batcher is not refused")
	}
	if _, err := b.Publish(context.Background(), assignedEvent(2), []string{"webhook"}); !errors.Is(err, delivery.ErrClosed) {
		t.Fatalf("publish after close: %v, want ErrClosed", err)
	}
}

// An event that came with its UUID is stored alone, with Nats-Msg-Id, even among events
// batched at the same time.
func TestEventWithItsUUIDIsStoredAlone(t *testing.T) {
	b := openSpoolWith(t, t.TempDir(), "webhook")
	defer b.Shutdown()
	const n = 12
	publishHeld(t, b, n, []string{"webhook"}, func(i int) *event.Event {
		if i%3 == 0 {
			return testEvent(i) // its own uuid
		}
		return assignedEvent(i)
	})
	msgs := streamMessages(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	events := 0
	for seq := uint64(1); seq <= msgs; seq++ {
		m, err := b.stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := decodeStored(m.Data, m.Header)
		if err != nil {
			t.Fatal(err)
		}
		events += len(evs)
		for _, ev := range evs {
			if ev.UUID == "" || !strings.HasPrefix(ev.UUID, "uuid-") {
				continue
			}
			seqField, _ := strconv.Atoi(event.FieldText(ev.OutputFields["seq"]))
			if seqField%3 != 0 {
				continue // an assigned event (testEvent's uuid, flagged assigned)
			}
			if len(evs) != 1 || m.Header.Get(nats.MsgIdHdr) != ev.UUID+"/webhook" {
				t.Fatalf("event %s stored in a message of %d events with Nats-Msg-Id %q", ev.UUID, len(evs), m.Header.Get(nats.MsgIdHdr))
			}
		}
	}
	if events != n || msgs >= n {
		t.Fatalf("%d events in %d messages, want %d events and some batched", events, msgs, n)
	}
}
