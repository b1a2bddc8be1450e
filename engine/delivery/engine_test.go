package delivery

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
)

// waitFor bounds every wait on the engine; a test that hits it has failed.
const waitFor = 10 * time.Second

// call is one Send or SendBatch the test answers through reply.
type call struct {
	evs   []*event.Event
	at    time.Time
	reply chan error
}

// scripted is an output whose every call is handed to the test, which decides the result.
// It honours ctx like a well-behaved output.
type scripted struct {
	name  string
	calls chan call
}

func newScripted(name string) *scripted { return &scripted{name: name, calls: make(chan call)} }

func (s *scripted) Name() string { return s.name }

func (s *scripted) do(ctx context.Context, evs []*event.Event) error {
	c := call{evs: evs, at: time.Now(), reply: make(chan error, 1)}
	select {
	case s.calls <- c:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *scripted) Send(ctx context.Context, ev *event.Event) error {
	return s.do(ctx, []*event.Event{ev})
}

// next waits for the output's next call.
func (s *scripted) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-s.calls:
		return c
	case <-time.After(waitFor):
		t.Fatalf("output %s: no call within %s", s.name, waitFor)
		return call{}
	}
}

// none asserts that no call is pending once the engine has stopped.
func (s *scripted) none(t *testing.T) {
	t.Helper()
	select {
	case c := <-s.calls:
		t.Fatalf("output %s: unexpected call with %d events", s.name, len(c.evs))
	default:
	}
}

// batchScripted is a scripted BatchSender.
type batchScripted struct{ *scripted }

func (b batchScripted) SendBatch(ctx context.Context, evs []*event.Event) error {
	return b.do(ctx, evs)
}

// recorder delivers at once and reports each event on a channel.
type recorder struct {
	name string
	got  chan *event.Event
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) Send(_ context.Context, ev *event.Event) error {
	r.got <- ev
	return nil
}

// failing always fails with err.
type failing struct {
	name  string
	err   error
	mu    sync.Mutex
	calls int
}

func (f *failing) Name() string { return f.name }
func (f *failing) Send(context.Context, *event.Event) error {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	return f.err
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func fastPolicy() Policy {
	p := DefaultPolicy()
	p.QueueSize = 100
	p.MaxConcurrentRequests = 1
	p.Timeout = waitFor
	p.Retry = RetryPolicy{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxElapsed: time.Minute}
	return p
}

var seq atomic.Int64 // tests may publish from several goroutines

func newEvent(rule string) *event.Event {
	return &event.Event{UUID: fmt.Sprintf("uuid-%d", seq.Add(1)), Rule: rule, Priority: event.Warning, Output: "out " + rule,
		Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Source: "syscalls"}
}

type harness struct {
	eng     *Engine
	m       *metrics.Metrics
	bus     *MemoryBus
	deadDir string
	stopped bool
}

func newHarness(t *testing.T, withDead bool) *harness {
	t.Helper()
	h := &harness{m: metrics.New(0), bus: NewMemoryBus(), deadDir: t.TempDir()}
	var dead *DeadLetter
	if withDead {
		var err error
		if dead, err = OpenDeadLetter(filepath.Join(h.deadDir, "dead.jsonl")); err != nil {
			t.Fatal(err)
		}
	}
	h.eng = NewEngine(h.bus, h.m, dead, quietLog())
	// Every test of the engine runs with rounds on, as the daemon does (rounds_test.go tests
	// the rounds themselves; the outputs' tests use the engine without them).
	h.eng.DeliverInRounds(time.Millisecond)
	return h
}

func (h *harness) add(t *testing.T, out Output, p Policy) {
	t.Helper()
	if err := h.eng.Add(out, p); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) publish(t *testing.T, ev *event.Event, outs ...string) PublishResult {
	t.Helper()
	res, err := h.eng.Publish(context.Background(), ev, outs)
	if err != nil {
		t.Fatalf("publish %s: %v", ev.UUID, err)
	}
	return res
}

// stop stops the engine, failing the test if that takes longer than the drain timeout.
func (h *harness) stop(t *testing.T, timeout time.Duration) int {
	t.Helper()
	done := make(chan int, 1)
	go func() { done <- h.eng.Stop(timeout) }()
	select {
	case n := <-done:
		h.stopped = true
		return n
	case <-time.After(timeout + waitFor):
		t.Fatalf("Stop(%s) did not return", timeout)
		return 0
	}
}

type deadRec struct {
	Output   string          `json:"output"`
	Reason   string          `json:"reason"`
	Error    string          `json:"error"`
	Attempts int             `json:"attempts"`
	Time     time.Time       `json:"time"`
	Event    json.RawMessage `json:"event"`
}

// dead reads the dead-letter file back (after stop, which closes it).
func (h *harness) dead(t *testing.T) []deadRec {
	t.Helper()
	f, err := os.Open(filepath.Join(h.deadDir, "dead.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []deadRec
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r deadRec
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

func deadUUID(t *testing.T, r deadRec) string {
	t.Helper()
	var ev struct {
		UUID string `json:"uuid"`
		Rule string `json:"rule"`
	}
	if err := json.Unmarshal(r.Event, &ev); err != nil {
		t.Fatalf("dead-letter event %s: %v", r.Event, err)
	}
	return ev.UUID
}

func TestDeliveredOnce(t *testing.T) {
	h := newHarness(t, true)
	out := newScripted("a")
	h.add(t, out, fastPolicy())
	h.eng.Start()
	ev := newEvent("once")
	h.publish(t, ev, "a")
	c := out.next(t)
	if len(c.evs) != 1 || c.evs[0] != ev {
		t.Fatalf("call got %v", c.evs)
	}
	c.reply <- nil
	if lost := h.stop(t, waitFor); lost != 0 {
		t.Errorf("Stop lost %d", lost)
	}
	out.none(t)
	if got := testutil.ToFloat64(h.m.Outputs.WithLabelValues("a", "ok")); got != 1 {
		t.Errorf("outputs_total{ok} = %v", got)
	}
	if got := testutil.ToFloat64(h.m.Retries.WithLabelValues("a")); got != 0 {
		t.Errorf("retries = %v", got)
	}
	if recs := h.dead(t); len(recs) != 0 {
		t.Errorf("dead letters: %+v", recs)
	}
}

func TestRetryTransientUntilSuccess(t *testing.T) {
	h := newHarness(t, true)
	out := newScripted("a")
	h.add(t, out, fastPolicy())
	h.eng.Start()
	ev := newEvent("retry")
	h.publish(t, ev, "a")
	for i := 0; i < 3; i++ {
		c := out.next(t)
		if c.evs[0] != ev {
			t.Fatalf("attempt %d got another event", i+1)
		}
		if i < 2 {
			c.reply <- errors.New("503 from sink")
		} else {
			c.reply <- nil
		}
	}
	h.stop(t, waitFor)
	out.none(t)
	if got := testutil.ToFloat64(h.m.Retries.WithLabelValues("a")); got != 2 {
		t.Errorf("retries = %v, want 2", got)
	}
	if got := testutil.ToFloat64(h.m.Outputs.WithLabelValues("a", "error")); got != 2 {
		t.Errorf("outputs_total{error} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(h.m.Outputs.WithLabelValues("a", "ok")); got != 1 {
		t.Errorf("outputs_total{ok} = %v, want 1", got)
	}
	if recs := h.dead(t); len(recs) != 0 {
		t.Errorf("dead letters: %+v", recs)
	}
}

func TestPermanentNotRetriedAndDeadLettered(t *testing.T) {
	h := newHarness(t, true)
	out := newScripted("a")
	h.add(t, out, fastPolicy())
	h.eng.Start()
	ev := newEvent("perm")
	h.publish(t, ev, "a")
	out.next(t).reply <- Permanent(errors.New("status 400: bad payload"))
	h.stop(t, waitFor)
	out.none(t)
	recs := h.dead(t)
	if len(recs) != 1 {
		t.Fatalf("dead letters: %+v", recs)
	}
	r := recs[0]
	if r.Output != "a" || r.Reason != "permanent" || r.Attempts != 1 || r.Error != "status 400: bad payload" || r.Time.IsZero() {
		t.Errorf("record %+v", r)
	}
	if deadUUID(t, r) != ev.UUID {
		t.Errorf("record event %s", r.Event)
	}
	if got := testutil.ToFloat64(h.m.Dropped.WithLabelValues("a", "permanent")); got != 1 {
		t.Errorf("dropped{permanent} = %v", got)
	}
	if got := testutil.ToFloat64(h.m.DeadLettered.WithLabelValues("a")); got != 1 {
		t.Errorf("deadlettered = %v", got)
	}
	if got := testutil.ToFloat64(h.m.Retries.WithLabelValues("a")); got != 0 {
		t.Errorf("retries = %v", got)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	h := newHarness(t, false)
	out := newScripted("a")
	h.add(t, out, fastPolicy()) // backoff alone would retry within 5ms
	h.eng.Start()
	h.publish(t, newEvent("ra"), "a")
	const hint = 300 * time.Millisecond
	first := out.next(t)
	replied := time.Now()
	first.reply <- RetryAfter(errors.New("429"), hint)
	second := out.next(t)
	if gap := second.at.Sub(replied); gap < hint {
		t.Errorf("retried after %s, Retry-After asked for %s", gap, hint)
	}
	second.reply <- nil
	h.stop(t, waitFor)
}

func TestRetryAfterBeyondMaxElapsedExpiresAtOnce(t *testing.T) {
	h := newHarness(t, true)
	out := newScripted("a")
	p := fastPolicy()
	p.Retry.MaxElapsed = time.Second
	h.add(t, out, p)
	h.eng.Start()
	h.publish(t, newEvent("ra"), "a")
	out.next(t).reply <- RetryAfter(errors.New("429"), time.Hour)
	h.stop(t, waitFor)
	out.none(t)
	recs := h.dead(t)
	if len(recs) != 1 || recs[0].Reason != "expired" || recs[0].Attempts != 1 {
		t.Errorf("dead letters %+v", recs)
	}
}

func TestMaxAttemptsExpires(t *testing.T) {
	h := newHarness(t, true)
	out := newScripted("a")
	p := fastPolicy()
	p.Retry.MaxAttempts = 3
	h.add(t, out, p)
	h.eng.Start()
	ev := newEvent("max")
	h.publish(t, ev, "a")
	for i := 0; i < 3; i++ {
		out.next(t).reply <- fmt.Errorf("attempt %d: 500", i+1)
	}
	h.stop(t, waitFor)
	out.none(t)
	recs := h.dead(t)
	if len(recs) != 1 {
		t.Fatalf("dead letters %+v", recs)
	}
	if r := recs[0]; r.Reason != "expired" || r.Attempts != 3 || r.Error != "attempt 3: 500" || deadUUID(t, r) != ev.UUID {
		t.Errorf("record %+v", r)
	}
	if got := testutil.ToFloat64(h.m.Dropped.WithLabelValues("a", "expired")); got != 1 {
		t.Errorf("dropped{expired} = %v", got)
	}
}

func TestMaxElapsedExpires(t *testing.T) {
	h := newHarness(t, true)
	out := &failing{name: "a", err: errors.New("connection refused")}
	p := fastPolicy()
	p.Retry = RetryPolicy{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, MaxElapsed: 100 * time.Millisecond}
	h.add(t, out, p)
	h.eng.Start()
	h.publish(t, newEvent("elapsed"), "a")
	// The event settles without help; poll the counter the engine bumps when it gives up.
	deadline := time.Now().Add(waitFor)
	for testutil.ToFloat64(h.m.Dropped.WithLabelValues("a", "expired")) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("event never expired")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.stop(t, waitFor)
	recs := h.dead(t)
	if len(recs) != 1 || recs[0].Reason != "expired" || recs[0].Attempts < 2 {
		t.Errorf("dead letters %+v", recs)
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if out.calls != recs[0].Attempts {
		t.Errorf("%d calls, record says %d attempts", out.calls, recs[0].Attempts)
	}
}

func TestWhenFullBlockIsAllOrNothing(t *testing.T) {
	h := newHarness(t, false)
	big := fastPolicy()
	small := fastPolicy()
	small.QueueSize = 1
	small.BlockTimeout = 100 * time.Millisecond
	h.add(t, newScripted("big"), big)
	h.add(t, newScripted("small"), small)
	h.add(t, newScripted("big2"), big)
	// Not started: nothing drains the queues.
	h.publish(t, newEvent("1"), "big", "small", "big2")
	start := time.Now()
	_, err := h.eng.Publish(context.Background(), newEvent("2"), []string{"big", "small", "big2"})
	var full *FullError
	if !errors.As(err, &full) || full.Output != "small" {
		t.Fatalf("err = %v, want *FullError for small", err)
	}
	if waited := time.Since(start); waited < small.BlockTimeout {
		t.Errorf("refused after %s, before blocktimeout %s", waited, small.BlockTimeout)
	}
	for _, name := range []string{"big", "small", "big2"} {
		if d := h.bus.Depth(name); d != 1 {
			t.Errorf("%s depth %d, want 1 (the refused event must be queued nowhere)", name, d)
		}
	}
	if got := testutil.ToFloat64(h.m.Dropped.WithLabelValues("small", "queue_full_rejected")); got != 1 {
		t.Errorf("dropped{queue_full_rejected} = %v", got)
	}
	// Room frees up: the next publish succeeds everywhere.
	if _, err := h.bus.Receive(context.Background(), "small"); err != nil {
		t.Fatal(err)
	}
	h.publish(t, newEvent("3"), "big", "small", "big2")
	if h.bus.Depth("big") != 2 || h.bus.Depth("small") != 1 {
		t.Errorf("depths %d %d", h.bus.Depth("big"), h.bus.Depth("small"))
	}
}

func TestWhenFullBlockWaitsForRoom(t *testing.T) {
	h := newHarness(t, false)
	p := fastPolicy()
	p.QueueSize = 1
	p.BlockTimeout = waitFor
	h.add(t, newScripted("a"), p)
	h.publish(t, newEvent("1"), "a")
	done := make(chan error, 1)
	go func() {
		_, err := h.eng.Publish(context.Background(), newEvent("2"), []string{"a"})
		done <- err
	}()
	if _, err := h.bus.Receive(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("blocked publish: %v", err)
	}
}

func TestWhenFullDropNewest(t *testing.T) {
	h := newHarness(t, true)
	p := fastPolicy()
	p.QueueSize = 1
	p.WhenFull = WhenFullDropNewest
	h.add(t, newScripted("a"), p)
	h.add(t, newScripted("b"), fastPolicy())
	first, second := newEvent("1"), newEvent("2")
	h.publish(t, first, "a", "b")
	res := h.publish(t, second, "a", "b")
	if len(res.DroppedNewest) != 1 || res.DroppedNewest[0] != "a" || len(res.Evicted) != 0 {
		t.Errorf("result %+v", res)
	}
	if h.bus.Depth("a") != 1 || h.bus.Depth("b") != 2 {
		t.Errorf("depths a=%d b=%d", h.bus.Depth("a"), h.bus.Depth("b"))
	}
	d, _ := h.bus.Receive(context.Background(), "a")
	if d.Event() != first {
		t.Error("dropnewest kept the new event")
	}
	if got := testutil.ToFloat64(h.m.Dropped.WithLabelValues("a", "queue_full")); got != 1 {
		t.Errorf("dropped{queue_full} = %v", got)
	}
	h.eng.Start()
	h.stop(t, 0)
	recs := h.dead(t)
	var found bool
	for _, r := range recs {
		if r.Output == "a" && r.Reason == "queue_full" && deadUUID(t, r) == second.UUID {
			found = true
		}
	}
	if !found {
		t.Errorf("dropped event not dead-lettered: %+v", recs)
	}
}

func TestWhenFullDropOldest(t *testing.T) {
	h := newHarness(t, false)
	p := fastPolicy()
	p.QueueSize = 2
	p.WhenFull = WhenFullDropOldest
	h.add(t, newScripted("a"), p)
	evs := []*event.Event{newEvent("1"), newEvent("2"), newEvent("3"), newEvent("4")}
	for i, ev := range evs {
		res := h.publish(t, ev, "a")
		if want := i >= 2; (len(res.Evicted) == 1) != want {
			t.Errorf("publish %d: %+v", i, res)
		}
	}
	if got := testutil.ToFloat64(h.m.Dropped.WithLabelValues("a", "queue_full")); got != 2 {
		t.Errorf("dropped{queue_full} = %v, want 2", got)
	}
	for _, want := range evs[2:] {
		d, err := h.bus.Receive(context.Background(), "a")
		if err != nil || d.Event() != want {
			t.Fatalf("queue holds %v, want the newest events", d)
		}
	}
	if h.bus.Depth("a") != 0 {
		t.Errorf("depth %d", h.bus.Depth("a"))
	}
}

// hung blocks every Send until its context ends, and says when it is blocked.
type hung struct {
	name    string
	entered chan struct{}
}

func (h *hung) Name() string { return h.name }
func (h *hung) Send(ctx context.Context, _ *event.Event) error {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestHungOutputDoesNotDelayAnother(t *testing.T) {
	h := newHarness(t, true)
	stuck := &hung{name: "stuck", entered: make(chan struct{}, 1)}
	p := fastPolicy()
	p.MaxConcurrentRequests = 2
	h.add(t, stuck, p)
	healthy := &recorder{name: "healthy", got: make(chan *event.Event, 100)}
	h.add(t, healthy, p)
	h.eng.Start()
	const n = 50
	for i := 0; i < n; i++ {
		h.publish(t, newEvent("iso"), "stuck", "healthy")
	}
	<-stuck.entered
	for i := 0; i < n; i++ {
		select {
		case <-healthy.got:
		case <-time.After(waitFor):
			t.Fatalf("healthy output got %d of %d while the other hung", i, n)
		}
	}
	lost := h.stop(t, 50*time.Millisecond)
	if lost != n {
		t.Errorf("Stop reports %d lost, want %d", lost, n)
	}
	recs := h.dead(t)
	if len(recs) != n {
		t.Fatalf("%d dead letters, want %d", len(recs), n)
	}
	for _, r := range recs {
		if r.Output != "stuck" || r.Reason != "shutdown" {
			t.Errorf("record %+v", r)
		}
	}
	if got := testutil.ToFloat64(h.m.Outputs.WithLabelValues("healthy", "ok")); got != n {
		t.Errorf("healthy ok = %v", got)
	}
}

func TestStopDrainsQueuedEvents(t *testing.T) {
	h := newHarness(t, true)
	out := newScripted("slow")
	h.add(t, out, fastPolicy())
	const n = 5
	for i := 0; i < n; i++ {
		h.publish(t, newEvent("drain"), "slow")
	}
	h.eng.Start()
	stopped := make(chan int, 1)
	go func() { stopped <- h.eng.Stop(waitFor) }()
	// Stop waits while the slow output takes its time over each event.
	for i := 0; i < n; i++ {
		c := out.next(t)
		select {
		case <-stopped:
			t.Fatalf("Stop returned with %d events undelivered", n-i)
		default:
		}
		c.reply <- nil
	}
	select {
	case lost := <-stopped:
		if lost != 0 {
			t.Errorf("lost %d", lost)
		}
	case <-time.After(waitFor):
		t.Fatal("Stop did not return after the queue drained")
	}
	h.stopped = true
	if got := testutil.ToFloat64(h.m.Outputs.WithLabelValues("slow", "ok")); got != n {
		t.Errorf("ok = %v", got)
	}
	if recs := h.dead(t); len(recs) != 0 {
		t.Errorf("dead letters %+v", recs)
	}
}

func TestStopReturnsPromptlyWhenIdle(t *testing.T) {
	h := newHarness(t, false)
	h.add(t, newScripted("a"), fastPolicy())
	h.eng.Start()
	start := time.Now()
	h.eng.Stop(time.Minute)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Stop of an idle engine took %s: it waited for its timeout", took)
	}
}

func TestStopWhileRetrying(t *testing.T) {
	h := newHarness(t, true)
	out := newScripted("a")
	p := fastPolicy()
	p.Retry = RetryPolicy{Initial: time.Hour, Max: time.Hour}
	h.add(t, out, p)
	h.eng.Start()
	ev := newEvent("retrying")
	h.publish(t, ev, "a")
	out.next(t).reply <- errors.New("500")
	if lost := h.stop(t, 50*time.Millisecond); lost != 1 {
		t.Errorf("lost %d", lost)
	}
	recs := h.dead(t)
	if len(recs) != 1 || recs[0].Reason != "shutdown" || recs[0].Attempts != 1 || deadUUID(t, recs[0]) != ev.UUID {
		t.Errorf("dead letters %+v", recs)
	}
}

func TestBatchMaxEvents(t *testing.T) {
	h := newHarness(t, false)
	out := batchScripted{newScripted("b")}
	p := fastPolicy()
	p.Batch = BatchPolicy{MaxEvents: 3, FlushInterval: waitFor}
	h.add(t, out, p)
	for i := 0; i < 6; i++ {
		h.publish(t, newEvent("batch"), "b")
	}
	h.eng.Start()
	for i := 0; i < 2; i++ {
		c := out.next(t)
		if len(c.evs) != 3 {
			t.Errorf("batch %d has %d events, want 3", i, len(c.evs))
		}
		c.reply <- nil
	}
	h.stop(t, waitFor)
	if got := testutil.ToFloat64(h.m.Outputs.WithLabelValues("b", "ok")); got != 6 {
		t.Errorf("ok = %v", got)
	}
}

func TestBatchMaxBytes(t *testing.T) {
	h := newHarness(t, false)
	out := batchScripted{newScripted("b")}
	p := fastPolicy()
	evs := []*event.Event{newEvent("x"), newEvent("x"), newEvent("x"), newEvent("x"), newEvent("x")}
	size := len(evs[0].JSON())
	p.Batch = BatchPolicy{MaxEvents: 100, MaxBytes: 2*size + size/2, FlushInterval: 50 * time.Millisecond}
	h.add(t, out, p)
	for _, ev := range evs {
		if len(ev.JSON()) != size {
			t.Fatal("test events differ in size")
		}
		h.publish(t, ev, "b")
	}
	h.eng.Start()
	var got []int
	for total := 0; total < len(evs); {
		c := out.next(t)
		n := 0
		for _, ev := range c.evs {
			n += len(ev.JSON())
		}
		if n > p.Batch.MaxBytes {
			t.Errorf("batch of %d bytes exceeds maxbytes %d", n, p.Batch.MaxBytes)
		}
		got = append(got, len(c.evs))
		total += len(c.evs)
		c.reply <- nil
	}
	if fmt.Sprint(got) != "[2 2 1]" {
		t.Errorf("batch sizes %v, want [2 2 1]", got)
	}
	h.stop(t, waitFor)
}

func TestBatchFlushInterval(t *testing.T) {
	h := newHarness(t, false)
	out := batchScripted{newScripted("b")}
	p := fastPolicy()
	p.Batch = BatchPolicy{MaxEvents: 10, FlushInterval: 150 * time.Millisecond}
	h.add(t, out, p)
	h.eng.Start()
	start := time.Now()
	h.publish(t, newEvent("lonely"), "b")
	c := out.next(t)
	if len(c.evs) != 1 {
		t.Errorf("partial batch has %d events", len(c.evs))
	}
	if waited := c.at.Sub(start); waited < p.Batch.FlushInterval {
		t.Errorf("partial batch sent after %s, before the flush interval %s", waited, p.Batch.FlushInterval)
	}
	c.reply <- nil
	h.stop(t, waitFor)
}

func TestBatchErrorRetriesOnlyFailedItems(t *testing.T) {
	h := newHarness(t, true)
	out := batchScripted{newScripted("b")}
	p := fastPolicy()
	p.Batch = BatchPolicy{MaxEvents: 4, FlushInterval: waitFor}
	h.add(t, out, p)
	evs := []*event.Event{newEvent("0"), newEvent("1"), newEvent("2"), newEvent("3")}
	for _, ev := range evs {
		h.publish(t, ev, "b")
	}
	h.eng.Start()
	c := out.next(t)
	if len(c.evs) != 4 {
		t.Fatalf("batch of %d", len(c.evs))
	}
	c.reply <- &BatchError{Failed: map[int]error{1: errors.New("throttled"), 2: Permanent(errors.New("mapping error")), 3: errors.New("throttled")}}
	c = out.next(t)
	if len(c.evs) != 2 || c.evs[0] != evs[1] || c.evs[1] != evs[3] {
		t.Fatalf("retry batch %v, want events 1 and 3", c.evs)
	}
	c.reply <- &BatchError{Failed: map[int]error{1: errors.New("throttled")}}
	c = out.next(t)
	if len(c.evs) != 1 || c.evs[0] != evs[3] {
		t.Fatalf("second retry %v, want event 3", c.evs)
	}
	c.reply <- nil
	h.stop(t, waitFor)
	out.none(t)
	if got := testutil.ToFloat64(h.m.Outputs.WithLabelValues("b", "ok")); got != 3 {
		t.Errorf("ok = %v, want 3", got)
	}
	if got := testutil.ToFloat64(h.m.Retries.WithLabelValues("b")); got != 3 {
		t.Errorf("retries = %v, want 3 (2 then 1 items)", got)
	}
	recs := h.dead(t)
	if len(recs) != 1 || recs[0].Reason != "permanent" || deadUUID(t, recs[0]) != evs[2].UUID {
		t.Errorf("dead letters %+v", recs)
	}
}

func TestHealthStates(t *testing.T) {
	h := newHarness(t, false)
	out := newScripted("a")
	p := fastPolicy()
	p.QueueSize = 7
	h.add(t, out, p)
	health := func() OutputHealth {
		hs := h.eng.Health()
		if len(hs) != 1 {
			t.Fatalf("health %+v", hs)
		}
		return hs[0]
	}
	if s := health(); s.State != "idle" || s.QueueSize != 7 || s.LastSuccess != nil || s.LastErrorAt != nil {
		t.Errorf("before start: %+v", s)
	}
	h.publish(t, newEvent("1"), "a")
	h.publish(t, newEvent("2"), "a")
	if s := health(); s.QueueDepth != 2 {
		t.Errorf("queue depth %d", s.QueueDepth)
	}
	h.eng.Start()
	c := out.next(t)
	if s := health(); s.InFlight != 1 {
		t.Errorf("in flight %d", s.InFlight)
	}
	c.reply <- errors.New("sink down")
	c = out.next(t) // the retry: the failure has been recorded
	if s := health(); s.State != "failing" || s.LastError != "sink down" || s.LastErrorAt == nil {
		t.Errorf("after an error: %+v", s)
	}
	c.reply <- nil
	c = out.next(t) // the second event: the success has been recorded
	if s := health(); s.State != "ok" || s.Delivered != 1 || s.LastSuccess == nil {
		t.Errorf("after a success: %+v", s)
	}
	c.reply <- Permanent(errors.New("rejected"))
	h.stop(t, waitFor)
	if s := health(); s.Failed != 1 || s.State != "failing" || s.LastError != "rejected" {
		t.Errorf("after a permanent failure: %+v", s)
	}
}

func TestAddValidates(t *testing.T) {
	h := newHarness(t, false)
	p := fastPolicy()
	p.QueueSize = 0
	if err := h.eng.Add(newScripted("a"), p); err == nil || err.Error() != "a.queuesize must be positive, got 0" {
		t.Errorf("Add with queuesize 0: %v", err)
	}
	p = fastPolicy()
	p.MinimumPriority = "loud"
	if err := h.eng.Add(newScripted("a"), p); err == nil {
		t.Error("Add accepted minimumpriority loud")
	}
	type nameOnly struct{ Output }
	if err := h.eng.Add(nameOnly{newScripted("x")}, fastPolicy()); err == nil {
		t.Error("Add accepted an output that cannot send")
	}
	h.add(t, newScripted("a"), fastPolicy())
	if err := h.eng.Add(newScripted("a"), fastPolicy()); err == nil {
		t.Error("Add accepted a duplicate")
	}
	if _, err := h.eng.Publish(context.Background(), newEvent("x"), []string{"nope"}); err == nil {
		t.Error("Publish to an unknown output succeeded")
	}
}

func TestRoute(t *testing.T) {
	h := newHarness(t, false)
	for name, prio := range map[string]string{"all": "", "errors": "error", "crit": "Critical"} {
		p := fastPolicy()
		p.MinimumPriority = prio
		h.add(t, newScripted(name), p)
	}
	ev := newEvent("r")
	ev.Priority = event.Error
	got := map[string]bool{}
	for _, n := range h.eng.Route(ev, "") {
		got[n] = true
	}
	if !got["all"] || !got["errors"] || got["crit"] {
		t.Errorf("Route(Error) = %v", got)
	}
	if r := h.eng.Route(ev, "errors"); len(r) != 1 || r[0] != "errors" {
		t.Errorf("Route only errors = %v", r)
	}
	if r := h.eng.Route(ev, "crit"); len(r) != 0 {
		t.Errorf("Route only crit = %v", r)
	}
}

func TestPolicyValidate(t *testing.T) {
	mod := func(f func(*Policy)) Policy { p := DefaultPolicy(); f(&p); return p }
	cases := []struct {
		p    Policy
		want string
	}{
		{DefaultPolicy(), ""},
		{mod(func(p *Policy) { p.MaxConcurrentRequests = 0 }), "slack.maxconcurrentrequests must be positive, got 0"},
		{mod(func(p *Policy) { p.Timeout = 0 }), "slack.timeout must be positive, got 0s"},
		{mod(func(p *Policy) { p.WhenFull = "spill" }), `slack.whenfull must be block, dropnewest or dropoldest, got "spill"`},
		{mod(func(p *Policy) { p.BlockTimeout = -1 }), "slack.blocktimeout must not be negative, got -1ns"},
		{mod(func(p *Policy) { p.Retry.Initial = 0 }), "slack.retry.initial must be positive, got 0s"},
		{mod(func(p *Policy) { p.Retry.Max = time.Millisecond }), "slack.retry.max (1ms) must not be below retry.initial (500ms)"},
		{mod(func(p *Policy) { p.Retry.MaxElapsed = -time.Second }), "slack.retry.maxelapsed must not be negative, got -1s"},
		{mod(func(p *Policy) { p.Retry.MaxAttempts = -1 }), "slack.retry.maxattempts must not be negative, got -1"},
		{mod(func(p *Policy) { p.Batch.MaxEvents = -1 }), "slack.batch.maxevents must not be negative, got -1"},
		{mod(func(p *Policy) { p.Batch.MaxBytes = -1 }), "slack.batch.maxbytes must not be negative, got -1"},
		{mod(func(p *Policy) { p.Batch.FlushInterval = -1 }), "slack.batch.flushinterval must not be negative, got -1ns"},
	}
	for _, c := range cases {
		err := c.p.Validate("slack")
		if (err == nil) != (c.want == "") || (err != nil && err.Error() != c.want) {
			t.Errorf("Validate = %v, want %q", err, c.want)
		}
	}
	if err := mod(func(p *Policy) { p.QueueSize = -3 }).Validate(""); err == nil || err.Error() != "queuesize must be positive, got -3" {
		t.Errorf("top-level key: %v", err)
	}
}

func TestBackoffDelayBounds(t *testing.T) {
	r := RetryPolicy{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
	ceilings := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 2 * time.Second, 2 * time.Second}
	for retry, ceiling := range ceilings {
		var maxSeen time.Duration
		seen := map[time.Duration]bool{}
		for i := 0; i < 2000; i++ {
			d := r.backoffDelay(retry)
			if d < 0 || d > ceiling {
				t.Fatalf("retry %d: delay %s outside [0, %s]", retry, d, ceiling)
			}
			maxSeen = max(maxSeen, d)
			seen[d] = true
		}
		if maxSeen < ceiling/2 {
			t.Errorf("retry %d: largest of 2000 delays %s, expected near %s (no exponential growth?)", retry, maxSeen, ceiling)
		}
		if len(seen) < 100 {
			t.Errorf("retry %d: only %d distinct delays: no jitter", retry, len(seen))
		}
	}
	if d := r.backoffDelay(10000); d < 0 || d > r.Max {
		t.Errorf("retry 10000: %s", d)
	}
	if d := (RetryPolicy{}).backoffDelay(3); d != 0 {
		t.Errorf("zero policy: %s", d)
	}
}

func TestErrorHelpers(t *testing.T) {
	base := errors.New("boom")
	if Permanent(nil) != nil || RetryAfter(nil, time.Second) != nil {
		t.Error("nil errors wrapped")
	}
	p := fmt.Errorf("webhook: %w", Permanent(base))
	if !IsPermanent(p) || !errors.Is(p, base) || p.Error() != "webhook: boom" {
		t.Errorf("Permanent: %v", p)
	}
	if IsPermanent(base) {
		t.Error("plain error is permanent")
	}
	ra := fmt.Errorf("slack: %w", RetryAfter(base, 3*time.Second))
	if d, ok := RetryAfterHint(ra); !ok || d != 3*time.Second || IsPermanent(ra) || !errors.Is(ra, base) {
		t.Errorf("RetryAfter: %v %v", d, ok)
	}
	if _, ok := RetryAfterHint(base); ok {
		t.Error("hint on a plain error")
	}
	be := &BatchError{Failed: map[int]error{2: base}}
	if be.Error() != "1 of the batch failed, e.g. item 2: boom" {
		t.Errorf("BatchError: %s", be)
	}
}

func TestBusClosed(t *testing.T) {
	b := NewMemoryBus()
	if err := b.AddOutput("a", fastPolicy()); err != nil {
		t.Fatal(err)
	}
	if err := b.AddOutput("a", fastPolicy()); err == nil {
		t.Error("duplicate output")
	}
	ev := newEvent("c")
	if _, err := b.Publish(context.Background(), ev, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := b.Publish(context.Background(), newEvent("late"), []string{"a"}); !errors.Is(err, ErrClosed) {
		t.Errorf("publish after close: %v", err)
	}
	d, err := b.Receive(context.Background(), "a")
	if err != nil || d.Event() != ev {
		t.Fatalf("queued event not drained after close: %v", err)
	}
	d.Done()
	if _, err := b.Receive(context.Background(), "a"); !errors.Is(err, ErrClosed) {
		t.Errorf("receive on an empty closed bus: %v", err)
	}
	if _, err := b.Receive(context.Background(), "zz"); err == nil {
		t.Error("receive from unknown output")
	}
}

func TestConcurrentPublishersAndWorkers(t *testing.T) {
	h := newHarness(t, false)
	rec := &recorder{name: "a", got: make(chan *event.Event, 1000)}
	p := fastPolicy()
	p.QueueSize = 10
	p.MaxConcurrentRequests = 4
	p.BlockTimeout = waitFor
	h.add(t, rec, p)
	h.eng.Start()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if _, err := h.eng.Publish(context.Background(), &event.Event{Rule: "c", Priority: event.Alert}, []string{"a"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	h.stop(t, waitFor)
	if len(rec.got) != 800 {
		t.Errorf("delivered %d of 800", len(rec.got))
	}
}

// deaf ignores its context and blocks until released.
type deaf struct {
	entered chan struct{}
	release chan struct{}
}

func (d *deaf) Name() string { return "deaf" }
func (d *deaf) Send(context.Context, *event.Event) error {
	d.entered <- struct{}{}
	<-d.release
	return nil
}

// TestStopAbandonsOutputIgnoringContext: an output that never returns from a cancelled send
// does not keep its event from the dead-letter file, nor Stop from returning.
func TestStopAbandonsOutputIgnoringContext(t *testing.T) {
	old := stopGrace
	stopGrace = 50 * time.Millisecond
	defer func() { stopGrace = old }()
	h := newHarness(t, true)
	out := &deaf{entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(out.release)
	h.add(t, out, fastPolicy())
	h.eng.Start()
	stuck, queued := newEvent("stuck"), newEvent("queued")
	h.publish(t, stuck, "deaf")
	h.publish(t, queued, "deaf")
	<-out.entered
	if lost := h.stop(t, 50*time.Millisecond); lost != 2 {
		t.Errorf("lost %d, want the held and the queued event", lost)
	}
	got := map[string]string{}
	for _, r := range h.dead(t) {
		got[deadUUID(t, r)] = r.Reason
	}
	if len(got) != 2 || got[stuck.UUID] != "shutdown" || got[queued.UUID] != "shutdown" {
		t.Errorf("dead letters %v, want both events with reason shutdown", got)
	}
}

// batchOnly implements only BatchSender.
type batchOnly struct {
	name string
	got  chan []*event.Event
}

func (b *batchOnly) Name() string { return b.name }
func (b *batchOnly) SendBatch(_ context.Context, evs []*event.Event) error {
	b.got <- evs
	if evs[0].Rule == "refused" {
		return &BatchError{Failed: map[int]error{0: Permanent(errors.New("refused"))}}
	}
	return nil
}

// TestBatchSenderWithBatchingOff: an output with only SendBatch gets one-event batches when
// batching is off, and a BatchError of that one event settles it.
func TestBatchSenderWithBatchingOff(t *testing.T) {
	h := newHarness(t, true)
	out := &batchOnly{name: "b", got: make(chan []*event.Event, 10)}
	p := fastPolicy()
	p.Batch.MaxEvents = 0
	h.add(t, out, p)
	h.eng.Start()
	ok, refused := newEvent("ok"), newEvent("refused")
	h.publish(t, ok, "b")
	h.publish(t, refused, "b")
	for _, want := range []*event.Event{ok, refused} {
		select {
		case evs := <-out.got:
			if len(evs) != 1 || evs[0] != want {
				t.Fatalf("got a batch of %d, want %s alone", len(evs), want.UUID)
			}
		case <-time.After(waitFor):
			t.Fatal("no SendBatch call")
		}
	}
	if lost := h.stop(t, waitFor); lost != 0 {
		t.Errorf("lost %d", lost)
	}
	if recs := h.dead(t); len(recs) != 1 || recs[0].Reason != "permanent" || deadUUID(t, recs[0]) != refused.UUID {
		t.Errorf("dead letters %+v", recs)
	}
}

// echoing fails like a receiver that echoes the request path, token included.
type echoing struct{ name, url string }

func (o echoing) Name() string { return o.name }
func (o echoing) Send(context.Context, *event.Event) error {
	return Permanent(fmt.Errorf("POST %s: status 404: Cannot POST %s", o.url, o.url[strings.Index(o.url[8:], "/")+8:]))
}

// TestErrorsAreRedacted: the output's secrets appear in no log line, /healthz last_error or
// dead-letter record, whichever part of the secret URL the error quotes.
func TestErrorsAreRedacted(t *testing.T) {
	const token = "TOKENabc123XYZ"
	secretURL := "https://chat.example/hooks/services/" + token + "?key=QUERYSECRET1"
	var logs strings.Builder
	h := newHarness(t, true)
	h.eng.log = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := h.eng.Add(echoing{name: "chat", url: secretURL}, fastPolicy(), WithRedactor(NewRedactor(SecretURLParts(secretURL)...))); err != nil {
		t.Fatal(err)
	}
	h.eng.Start()
	h.publish(t, newEvent("leak"), "chat")
	deadline := time.Now().Add(waitFor)
	for h.eng.Health()[0].Failed == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	health := h.eng.Health()[0].LastError
	h.stop(t, waitFor)
	recs := h.dead(t)
	if len(recs) != 1 {
		t.Fatalf("dead letters %+v", recs)
	}
	for where, text := range map[string]string{"log": logs.String(), "/healthz": health, "dead letter": recs[0].Error} {
		if strings.Contains(text, token) || strings.Contains(text, "QUERYSECRET1") {
			t.Errorf("%s leaks the token: %s", where, text)
		}
		if !strings.Contains(text, "chat.example") && where != "log" {
			t.Errorf("%s lost the host, which is not secret: %s", where, text)
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
