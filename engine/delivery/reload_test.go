package delivery

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// closable is a scripted output that records its Close.
type closable struct {
	*scripted
	closed atomic.Bool
}

func (c *closable) Close() error { c.closed.Store(true); return nil }

// eventually fails the test unless cond holds within waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	until := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(until) {
			t.Fatalf("not within %s: %s", waitFor, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// queueThreeAndStart queues three events for output hook and starts the engine.
func (h *harness) queueThreeAndStart(t *testing.T) []*event.Event {
	t.Helper()
	evs := []*event.Event{newEvent("a"), newEvent("b"), newEvent("c")}
	for _, ev := range evs {
		h.publish(t, ev, "hook")
	}
	h.eng.Start()
	return evs
}

// TestReplaceKeepsQueueAndRetries: an output rebuilt while one event waits for its retry and
// two are queued delivers all three with the new output, the retry included; the queue is
// resized and the old output is closed once its worker let go of it.
func TestReplaceKeepsQueueAndRetries(t *testing.T) {
	h := newHarness(t, false)
	old := &closable{scripted: newScripted("hook")}
	h.add(t, old, fastPolicy())
	evs := h.queueThreeAndStart(t)
	defer h.stop(t, time.Second)
	c := old.next(t)
	c.reply <- RetryAfter(errors.New("busy"), 300*time.Millisecond)

	p := fastPolicy()
	p.QueueSize = 50
	p.MaxConcurrentRequests = 2
	rebuilt := newScripted("hook")
	if err := h.eng.Replace(rebuilt, mustPrepare(t, p)); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for range evs {
		c := rebuilt.next(t)
		for _, ev := range c.evs {
			got[ev.UUID]++
		}
		c.reply <- nil
	}
	for _, ev := range evs {
		if got[ev.UUID] != 1 {
			t.Errorf("%s delivered %d times by the rebuilt output", ev.UUID, got[ev.UUID])
		}
	}
	eventually(t, "the replaced output is closed", old.closed.Load)
	old.none(t)
	if hs := h.eng.Health(); len(hs) != 1 || hs[0].QueueSize != 50 || hs[0].Delivered != 3 {
		t.Errorf("health after the rebuild: %+v", hs)
	}
	if err := h.eng.Replace(newScripted("nope"), mustPrepare(t, p)); err == nil {
		t.Error("replaced an output that does not run")
	}
}

// TestRemoveDrainsThenStops: a removed output gets no new event, delivers what its queue
// holds, shows as draining meanwhile, is closed, and can be added again once drained.
func TestRemoveDrainsThenStops(t *testing.T) {
	h := newHarness(t, false)
	out := &closable{scripted: newScripted("hook")}
	h.add(t, out, fastPolicy())
	h.add(t, &recorder{name: "other", got: make(chan *event.Event, 10)}, fastPolicy())
	evs := h.queueThreeAndStart(t)
	defer h.stop(t, time.Second)
	first := out.next(t)
	done, err := h.eng.Remove("hook")
	if err != nil {
		t.Fatal(err)
	}
	if r := h.eng.Route(newEvent("d"), ""); len(r) != 1 || r[0] != "other" {
		t.Errorf("routed after the removal to %v", r)
	}
	if _, _, err := h.eng.Dispatch(context.Background(), newEvent("e"), "hook"); err != nil {
		t.Errorf("dispatch to the removed output only: %v", err)
	}
	states := map[string]string{}
	for _, o := range h.eng.Health() {
		states[o.Name] = o.State
	}
	if states["hook"] != "draining" {
		t.Errorf("health while draining: %v", states)
	}
	if err := h.eng.Add(newScripted("hook"), fastPolicy()); err == nil {
		t.Error("added back while draining")
	}
	first.reply <- nil
	for range evs[1:] {
		out.next(t).reply <- nil
	}
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("the removal did not finish once the queue drained")
	}
	if !out.closed.Load() {
		t.Error("the removed output was not closed")
	}
	for _, o := range h.eng.Health() {
		if o.Name == "hook" {
			t.Errorf("health still lists the removed output: %+v", o)
		}
	}
	again := &recorder{name: "hook", got: make(chan *event.Event, 1)}
	if err := h.eng.Add(again, fastPolicy()); err != nil {
		t.Fatal(err)
	}
	ev := newEvent("f")
	if _, _, err := h.eng.Dispatch(context.Background(), ev, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-again.got:
		if got != ev {
			t.Errorf("re-added output got %s", got.UUID)
		}
	case <-time.After(waitFor):
		t.Fatal("the re-added output delivered nothing")
	}
	if _, err := h.eng.Remove("nope"); err == nil {
		t.Error("removed an output that does not run")
	}
}

// TestMemoryBusResize: a smaller queue keeps what the old one holds (delivered first, in
// order) on top of its new size; a receiver waiting on the old queue moves to the new one.
func TestMemoryBusResize(t *testing.T) {
	b := NewMemoryBus()
	p := fastPolicy()
	p.QueueSize, p.BlockTimeout = 4, 0
	if err := b.AddOutput("o", p); err != nil {
		t.Fatal(err)
	}
	var evs []*event.Event
	for range 4 {
		ev := newEvent("r")
		evs = append(evs, ev)
		if _, err := b.Publish(context.Background(), ev, []string{"o"}); err != nil {
			t.Fatal(err)
		}
	}
	p.QueueSize = 2
	if err := b.UpdateOutput("o", p); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ev := newEvent("r")
		evs = append(evs, ev)
		if _, err := b.Publish(context.Background(), ev, []string{"o"}); err != nil {
			t.Fatal(err)
		}
	}
	var full *FullError
	if _, err := b.Publish(context.Background(), newEvent("r"), []string{"o"}); !errors.As(err, &full) {
		t.Errorf("publish past the new size: %v", err)
	}
	if d := b.Depth("o"); d != 6 {
		t.Errorf("depth %d, want 6", d)
	}
	for i, want := range evs {
		d, err := b.Receive(context.Background(), "o")
		if err != nil || d.Event() != want {
			t.Fatalf("receive %d: %v, got %v want %s", i, err, d, want.UUID)
		}
	}
	got := make(chan *event.Event)
	go func() {
		d, err := b.Receive(context.Background(), "o")
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- d.Event()
	}()
	time.Sleep(10 * time.Millisecond) // let the receiver wait on the queue being replaced
	p.QueueSize = 8
	if err := b.UpdateOutput("o", p); err != nil {
		t.Fatal(err)
	}
	ev := newEvent("r")
	if _, err := b.Publish(context.Background(), ev, []string{"o"}); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-got:
		if g != ev {
			t.Errorf("waiting receiver got %v", g)
		}
	case <-time.After(waitFor):
		t.Fatal("a receiver waiting on the replaced queue never got the event")
	}
	if !b.Drained("o") {
		t.Error("an empty queue is not drained")
	}
}

// TestAddAfterStart: an output added to a running engine starts delivering at once.
func TestAddAfterStart(t *testing.T) {
	h := newHarness(t, false)
	h.add(t, &recorder{name: "a", got: make(chan *event.Event, 1)}, fastPolicy())
	h.eng.Start()
	defer h.stop(t, time.Second)
	b := &recorder{name: "b", got: make(chan *event.Event, 1)}
	h.add(t, b, fastPolicy())
	ev := newEvent("r")
	if targets, _, err := h.eng.Dispatch(context.Background(), ev, "b"); err != nil || len(targets) != 1 {
		t.Fatalf("dispatch: %v %v", targets, err)
	}
	select {
	case <-b.got:
	case <-time.After(waitFor):
		t.Fatal("the added output delivered nothing")
	}
}

// TestChangesRefusedOnceStopping: once Stop began, no output is added, rebuilt or removed
// (none may start workers Stop would not wait for).
func TestChangesRefusedOnceStopping(t *testing.T) {
	h := newHarness(t, false)
	h.add(t, &recorder{name: "a", got: make(chan *event.Event, 1)}, fastPolicy())
	h.eng.Start()
	h.stop(t, time.Second)
	if err := h.eng.Add(&recorder{name: "b"}, fastPolicy()); !errors.Is(err, errStopping) {
		t.Errorf("Add: %v", err)
	}
	if err := h.eng.Replace(&recorder{name: "a"}, mustPrepare(t, fastPolicy())); !errors.Is(err, errStopping) {
		t.Errorf("Replace: %v", err)
	}
	if _, err := h.eng.Remove("a"); !errors.Is(err, errStopping) {
		t.Errorf("Remove: %v", err)
	}
}
