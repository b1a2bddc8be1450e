package delivery

import (
	"context"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// roundsHarness is a harness whose engine delivers in rounds of the given interval.
func roundsHarness(t *testing.T, interval time.Duration) *harness {
	t.Helper()
	h := newHarness(t, true)
	h.eng.rounds = nil
	h.eng.DeliverInRounds(interval)
	if h.eng.rounds == nil {
		t.Fatal("DeliverInRounds did not turn rounds on for a memory bus")
	}
	return h
}

func TestRoundsFirstEventAfterQuietGoesAtOnceTheNextWaitsForTheRound(t *testing.T) {
	h := roundsHarness(t, time.Hour)
	out := &recorder{name: "fast", got: make(chan *event.Event, 10)}
	p := fastPolicy()
	p.MaxConcurrentRequests = 2
	h.add(t, out, p)
	h.eng.Start()
	// Both workers wait for a round before anything is published.
	eventually(t, "workers waiting", func() bool { return h.eng.rounds.waiting.Load() == 2 })

	first := newEvent("first")
	h.publish(t, first, "fast")
	select {
	case got := <-out.got:
		if got != first {
			t.Fatalf("delivered %s, want %s", got.UUID, first.UUID)
		}
	case <-time.After(waitFor):
		t.Fatal("the first event after a quiet spell was not delivered at once")
	}
	eventually(t, "round delivered", func() bool { return h.eng.rounds.hold.Load() == nil })

	// The next round is an hour away: the second event stays queued until Stop drains it.
	second := newEvent("second")
	h.publish(t, second, "fast")
	select {
	case got := <-out.got:
		t.Fatalf("%s delivered before its round", got.UUID)
	case <-time.After(20 * time.Millisecond):
	}
	if d := h.bus.Depth("fast"); d != 1 {
		t.Fatalf("depth %d, want the second event queued", d)
	}
	if lost := h.stop(t, waitFor); lost != 0 {
		t.Fatalf("Stop lost %d events", lost)
	}
	select {
	case got := <-out.got:
		if got != second {
			t.Fatalf("drained %s, want %s", got.UUID, second.UUID)
		}
	default:
		t.Fatal("Stop did not deliver the event waiting for its round")
	}
}

func TestRoundsHoldTheInputsWhileARoundIsDelivered(t *testing.T) {
	h := roundsHarness(t, time.Hour)
	out := newScripted("held")
	h.add(t, out, fastPolicy())
	h.eng.Start()
	eventually(t, "worker waiting", func() bool { return h.eng.rounds.waiting.Load() == 1 })

	h.publish(t, newEvent("one"), "held")
	c := out.next(t) // the round opened and its delivery is under way
	dispatched := make(chan error, 1)
	go func() {
		_, _, err := h.eng.Dispatch(context.Background(), newEvent("two"), "")
		dispatched <- err
	}()
	if h.eng.rounds.hold.Load() == nil {
		t.Fatal("no hold on the inputs while the round is delivered")
	}
	select {
	case <-dispatched:
		t.Fatal("an input queued an event while the round was delivered")
	case <-time.After(20 * time.Millisecond):
	}
	c.reply <- nil
	select {
	case err := <-dispatched:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("the inputs still wait after the round was delivered")
	}
	// The second event waits for a round an hour away: Stop delivers it.
	stopped := make(chan int, 1)
	go func() { stopped <- h.eng.Stop(waitFor) }()
	out.next(t).reply <- nil
	if lost := <-stopped; lost != 0 {
		t.Fatalf("Stop lost %d events", lost)
	}
	h.stopped = true
}

func TestRoundsASlowOutputLeavesRoundsAndReleasesTheInputs(t *testing.T) {
	h := roundsHarness(t, 5*time.Millisecond)
	stuck := &hung{name: "stuck", entered: make(chan struct{}, 1)}
	h.add(t, stuck, fastPolicy())
	h.eng.Start()
	eventually(t, "worker waiting", func() bool { return h.eng.rounds.waiting.Load() == 1 })

	h.publish(t, newEvent("hangs"), "stuck")
	<-stuck.entered
	// No worker comes back within an interval: the hold ends and the output leaves rounds.
	done := make(chan struct{})
	go func() {
		_, _, _ = h.eng.Dispatch(context.Background(), newEvent("next"), "")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("a hung output holds the inputs")
	}
	r := h.eng.runner("stuck")
	if !h.eng.rounds.direct(r) {
		t.Error("the hung output is still in rounds")
	}
	if lost := h.stop(t, 50*time.Millisecond); lost != 2 {
		t.Errorf("Stop reports %d lost, want 2 (the hung one and the queued one)", lost)
	}
}

func TestRoundsDeliverEveryEventUnderLoad(t *testing.T) {
	h := roundsHarness(t, time.Millisecond)
	out := &recorder{name: "many", got: make(chan *event.Event, 5000)}
	p := fastPolicy()
	p.QueueSize = 5000
	p.MaxConcurrentRequests = 8
	h.add(t, out, p)
	h.eng.Start()
	const n = 5000
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		go func() {
			for i := 0; i < n/4; i++ {
				if _, _, err := h.eng.Dispatch(context.Background(), newEvent("load"), ""); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < 4; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case ev := <-out.got:
			if seen[ev.UUID] {
				t.Fatalf("%s delivered twice", ev.UUID)
			}
			seen[ev.UUID] = true
		case <-time.After(waitFor):
			t.Fatalf("%d of %d delivered", len(seen), n)
		}
	}
	if lost := h.stop(t, waitFor); lost != 0 {
		t.Fatalf("Stop lost %d", lost)
	}
}
