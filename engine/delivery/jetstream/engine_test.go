package jetstream

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/testpeers"
)

// recorder is an output that fails while failing is set and records what it delivered.
type recorder struct {
	mu      sync.Mutex
	failing bool
	got     map[int]int
	tried   chan struct{}
}

func (r *recorder) Name() string { return "webhook" }

func (r *recorder) Send(_ context.Context, ev *event.Event) error {
	n, _ := strconv.Atoi(event.FieldText(ev.OutputFields["seq"]))
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case r.tried <- struct{}{}:
	default:
	}
	if r.failing {
		return errors.New("503 from the receiver")
	}
	r.got[n]++
	return nil
}

func (r *recorder) delivered() map[int]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := make(map[int]int, len(r.got))
	for k, v := range r.got {
		c[k] = v
	}
	return c
}

// Events accepted while the output fails are neither lost nor dead-lettered at shutdown, nor
// do their retries hold the shutdown up: they stay in the spool and a new engine on the same
// spool delivers every one.
func TestEngineOnSpoolKeepsUndeliveredEventsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	deadPath := filepath.Join(t.TempDir(), "dead.jsonl")
	p := policy()
	p.Retry.Initial, p.Retry.Max = 10*time.Millisecond, 50*time.Millisecond

	run := func(out *recorder, publish int) (*delivery.Engine, *Bus) {
		b := openSpool(t, dir, 0)
		dead, err := delivery.OpenDeadLetter(deadPath)
		if err != nil {
			t.Fatal(err)
		}
		e := delivery.NewEngine(b, nil, dead, quiet())
		if err := e.Add(out, p); err != nil {
			t.Fatal(err)
		}
		e.Start()
		for i := 0; i < publish; i++ {
			if _, err := e.Publish(context.Background(), testEvent(i), []string{"webhook"}); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
		return e, b
	}

	failing := &recorder{failing: true, got: map[int]int{}, tried: make(chan struct{}, 1)}
	e, b := run(failing, 20)
	<-failing.tried // a worker holds an event and retries it
	// The retries need not outlast the shutdown: the spool keeps the events, so Stop
	// returns without waiting for its timeout.
	stopped := make(chan struct{})
	go func() { e.Stop(time.Hour); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Stop waited for the retries of events the spool keeps")
	}
	b.Shutdown()
	if e.Requeued() == 0 {
		t.Fatal("Stop requeued nothing although workers held failing events")
	}
	if data, _ := os.ReadFile(deadPath); len(data) > 0 {
		t.Fatalf("events dead-lettered at shutdown on a durable bus:\n%s", data)
	}

	healthy := &recorder{got: map[int]int{}, tried: make(chan struct{}, 1)}
	e, b = run(healthy, 0)
	defer b.Shutdown()
	defer e.Stop(time.Second)
	testpeers.Eventually(t, 15*time.Second, func() bool { return len(healthy.delivered()) == 20 },
		"after the restart, not every event accepted before it was delivered")
}

// An event handed out more than retry.maxdeliveries times without being settled (saker died
// while delivering it each time) is dead-lettered instead of being tried again.
func TestEngineGivesUpPastMaxDeliveries(t *testing.T) {
	dir := t.TempDir()
	b := openSpool(t, dir, 0)
	addWebhookWith(t, b, 7)
	for i := 0; i < 2; i++ { // two deliveries that die unsettled
		d, _ := receiveSeq(t, b, "webhook")
		d.Requeue()
	}
	b.Shutdown()

	b = openSpool(t, dir, 0)
	defer b.Shutdown()
	deadPath := filepath.Join(t.TempDir(), "dead.jsonl")
	dead, err := delivery.OpenDeadLetter(deadPath)
	if err != nil {
		t.Fatal(err)
	}
	p := policy()
	p.Retry.MaxDeliveries = 2
	out := &recorder{got: map[int]int{}, tried: make(chan struct{}, 1)}
	e := delivery.NewEngine(b, nil, dead, quiet())
	if err := e.Add(out, p); err != nil {
		t.Fatal(err)
	}
	e.Start()
	testpeers.Eventually(t, 10*time.Second, func() bool {
		data, _ := os.ReadFile(deadPath)
		return strings.Contains(string(data), `"reason":"max_deliveries"`)
	}, "an event handed out 3 times with retry.maxdeliveries 2 was not dead-lettered")
	e.Stop(time.Second)
	if got := out.delivered(); len(got) != 0 {
		t.Fatalf("the output was sent the event past retry.maxdeliveries: %v", got)
	}
	testpeers.Eventually(t, 5*time.Second, func() bool { return b.State().StoredEvents == 0 },
		"the dead-lettered event is still stored (it must be acknowledged)")
}

// stubborn is an output whose Send ignores cancellation until release closes, then fails.
type stubborn struct {
	sending, returned, release chan struct{}
}

func (s *stubborn) Name() string { return "webhook" }

func (s *stubborn) Send(context.Context, *event.Event) error {
	close(s.sending)
	<-s.release
	defer close(s.returned)
	return errors.New("503 from the receiver")
}

// An event whose send ignored the shutdown's cancellation, and that Stop therefore left to the
// spool, stays stored when the send fails at last: it is not acknowledged undelivered.
func TestEngineLeavesAStuckSendsEventStored(t *testing.T) {
	dir := t.TempDir()
	b := openSpool(t, dir, 0)
	out := &stubborn{sending: make(chan struct{}), returned: make(chan struct{}), release: make(chan struct{})}
	e := delivery.NewEngine(b, nil, nil, quiet())
	if err := e.Add(out, policy()); err != nil {
		t.Fatal(err)
	}
	e.Start()
	if _, err := e.Publish(context.Background(), testEvent(1), []string{"webhook"}); err != nil {
		t.Fatal(err)
	}
	<-out.sending
	e.Stop(50 * time.Millisecond) // cancels, waits its grace, leaves the stuck worker's event
	if e.Requeued() != 1 {
		t.Fatalf("requeued %d events, want the stuck one", e.Requeued())
	}
	close(out.release)
	<-out.returned
	time.Sleep(100 * time.Millisecond) // the worker settles what its send returned
	b.Shutdown()

	healthy := &recorder{got: map[int]int{}, tried: make(chan struct{}, 1)}
	b = openSpool(t, dir, 0)
	defer b.Shutdown()
	e = delivery.NewEngine(b, nil, nil, quiet())
	if err := e.Add(healthy, policy()); err != nil {
		t.Fatal(err)
	}
	e.Start()
	defer e.Stop(time.Second)
	testpeers.Eventually(t, 10*time.Second, func() bool { return healthy.delivered()[1] == 1 },
		"the stuck send's event was not delivered after the restart")
}
