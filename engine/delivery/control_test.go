package delivery

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/saker-dev/saker/engine/event"
)

func TestFilterRoutesAndCounts(t *testing.T) {
	h := newHarness(t, false)
	p := fastPolicy()
	p.Filter = `priority >= error and not rule startswith "K8s "`
	h.add(t, &recorder{name: "chat", got: make(chan *event.Event, 10)}, p)
	h.add(t, &recorder{name: "all", got: make(chan *event.Event, 10)}, fastPolicy())
	warn := newEvent("Write below etc") // Warning
	crit := newEvent("Write below etc")
	crit.Priority = event.Critical
	k8s := newEvent("K8s Secret Get")
	k8s.Priority = event.Critical
	for ev, want := range map[*event.Event]string{warn: "all", crit: "chat,all", k8s: "all"} {
		if got := strings.Join(h.eng.Route(ev, ""), ","); got != want {
			t.Errorf("%s %s routed to %q, want %q", ev.Priority, ev.Rule, got, want)
		}
	}
	if got := strings.Join(h.eng.RouteTest(""), ","); got != "chat,all" {
		t.Errorf("the test event routed to %q, want every output", got)
	}
	if got := testutil.ToFloat64(h.m.Filtered.WithLabelValues("chat")); got != 2 {
		t.Errorf("saker_filtered_total{chat} = %v, want 2", got)
	}
	for _, o := range h.eng.Health() {
		if o.Name == "chat" && o.Filtered != 2 {
			t.Errorf("/healthz filtered = %d, want 2", o.Filtered)
		}
	}
}

func TestFilterErrorNamesOutput(t *testing.T) {
	p := fastPolicy()
	p.Filter = "priority >>>= nonsense"
	_, err := Prepare("webhook", p)
	if err == nil || !strings.Contains(err.Error(), "webhook.filter: column 11: expected a number or a level name") {
		t.Fatalf("error %v", err)
	}
	h := newHarness(t, false)
	if err := h.eng.Add(&recorder{name: "slack"}, p); err == nil || !strings.HasPrefix(err.Error(), "slack.filter: column 11") {
		t.Fatalf("Add: %v", err)
	}
}

// fakeClock is a dedup clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) get() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestDedupWindowEdges(t *testing.T) {
	h := newHarness(t, false)
	p := fastPolicy()
	p.Dedup.Window = 30 * time.Second
	rec := &recorder{name: "hook", got: make(chan *event.Event, 100)}
	h.add(t, rec, p)
	clock := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.eng.byName["hook"].ctl.Load().dedup.now = clock.get
	h.eng.Start()
	defer h.stop(t, time.Second)

	same := func(ts string) *event.Event {
		ev := newEvent("Terminal shell")
		ev.Output = ts + ": Notice A shell was spawned (user=root)"
		ev.OutputFields = map[string]any{"user.name": "root"}
		return ev
	}
	recv := func() *event.Event {
		t.Helper()
		select {
		case ev := <-rec.got:
			return ev
		case <-time.After(waitFor):
			t.Fatal("nothing delivered")
			return nil
		}
	}
	first := same("10:00:00.000000001")
	h.publish(t, first, "hook")
	if got := recv(); got != first {
		t.Fatalf("first alert not delivered as is")
	}
	// Identical alerts (their timestamps differ) inside the window: suppressed, counted.
	for i := 0; i < 4; i++ {
		clock.add(7 * time.Second) // 7, 14, 21, 28 s
		h.publish(t, same("10:00:0"+string(rune('1'+i))+".5"), "hook")
	}
	other := newEvent("Other rule")
	h.publish(t, other, "hook")
	if got := recv(); got.Rule != "Other rule" {
		t.Fatalf("got %s, want the other rule's alert (the duplicates suppressed)", got.Rule)
	}
	if n := testutil.ToFloat64(h.m.Suppressed.WithLabelValues("hook")); n != 4 {
		t.Errorf("saker_suppressed_total = %v, want 4", n)
	}
	// At exactly the window's end the key is free again; the alert says 4 were suppressed.
	clock.add(2 * time.Second) // 30 s after the first was sent
	h.publish(t, same("10:00:30.0"), "hook")
	got := recv()
	if got.OutputFields[SuppressedField] != 4 || got.OutputFields[SuppressedWindowField] != "30s" {
		t.Errorf("%s = %v, %s = %v, want 4 and 30s", SuppressedField, got.OutputFields[SuppressedField],
			SuppressedWindowField, got.OutputFields[SuppressedWindowField])
	}
	if _, shared := first.OutputFields[SuppressedField]; shared {
		t.Error("the count was written into the shared event")
	}
	// The window restarted with that alert: the next duplicate 29.9 s later is suppressed.
	clock.add(29900 * time.Millisecond)
	h.publish(t, same("10:01:00.0"), "hook")
	h.publish(t, newEvent("Marker"), "hook")
	if got := recv(); got.Rule != "Marker" {
		t.Fatalf("got %s, want the marker (duplicate suppressed)", got.Rule)
	}
	for _, o := range h.eng.Health() {
		if o.Suppressed != 5 {
			t.Errorf("/healthz suppressed = %d, want 5", o.Suppressed)
		}
	}
}

func TestDedupDefaultKey(t *testing.T) {
	d, _ := newDeduper(DedupPolicy{Window: time.Minute})
	a := &event.Event{Rule: "r", Priority: event.Error, Output: "16:31:56.746609046: Error file opened"}
	b := &event.Event{Rule: "r", Priority: event.Error, Output: "16:32:10.000000001: Error file opened"}
	c := &event.Event{Rule: "r", Priority: event.Critical, Output: "16:32:10.000000001: Error file opened"}
	e := &event.Event{Rule: "r", Priority: event.Error, Output: "16:32:10.000000001: Error other file opened"}
	if dup, _ := d.check(a); dup {
		t.Error("first alert suppressed")
	}
	if dup, _ := d.check(b); !dup {
		t.Error("same alert with another timestamp not suppressed")
	}
	if dup, _ := d.check(c); dup {
		t.Error("another priority suppressed")
	}
	if dup, _ := d.check(e); dup {
		t.Error("another output text suppressed")
	}
}

func TestDedupKeyTemplate(t *testing.T) {
	d, err := newDeduper(DedupPolicy{Window: time.Minute, Key: `{{.Rule}}/{{index .OutputFields "k8s.pod.name"}}`})
	if err != nil {
		t.Fatal(err)
	}
	a := &event.Event{Rule: "r", Output: "x", OutputFields: map[string]any{"k8s.pod.name": "p1"}}
	b := &event.Event{Rule: "r", Output: "y", OutputFields: map[string]any{"k8s.pod.name": "p1"}}
	c := &event.Event{Rule: "r", Output: "x", OutputFields: map[string]any{"k8s.pod.name": "p2"}}
	if dup, _ := d.check(a); dup {
		t.Error("first alert suppressed")
	}
	if dup, _ := d.check(b); !dup {
		t.Error("same rule and pod, other text: not suppressed by the key")
	}
	if dup, _ := d.check(c); dup {
		t.Error("another pod suppressed")
	}
	if _, err := newDeduper(DedupPolicy{Window: time.Minute, Key: "{{.Rule"}); err == nil {
		t.Error("a broken template compiled")
	}
	p := fastPolicy()
	p.Dedup.Key = "{{.Rule"
	if _, err := Prepare("slack", p); err == nil || !strings.Contains(err.Error(), "slack.dedup.key") {
		t.Errorf("Prepare: %v", err)
	}
}

// TestRateLimitPacesWithoutDropping: 10 events at 20/s with burst 2 on 4 workers take about
// (10-2)/20 = 0.4 s, are all delivered, and the excess waits in the queue.
func TestRateLimitPacesWithoutDropping(t *testing.T) {
	h := newHarness(t, false)
	p := fastPolicy()
	p.MaxConcurrentRequests = 4
	p.RateLimit = RateLimitPolicy{Rate: 20, Burst: 2}
	rec := &recorder{name: "slack", got: make(chan *event.Event, 100)}
	h.add(t, rec, p)
	for i := 0; i < 10; i++ {
		h.publish(t, newEvent("r"), "slack")
	}
	start := time.Now()
	h.eng.Start()
	defer h.stop(t, time.Second)
	var at []time.Duration
	for i := 0; i < 10; i++ {
		select {
		case <-rec.got:
			at = append(at, time.Since(start))
		case <-time.After(waitFor):
			t.Fatalf("%d of 10 delivered", i)
		}
	}
	// Timing on a shared machine is noisy: assert only lower bounds, which a missing
	// limiter fails.
	if at[9] < 350*time.Millisecond {
		t.Errorf("10 events at 20/s burst 2 delivered in %s, want >= 0.4 s", at[9])
	}
	if at[2] < 40*time.Millisecond {
		t.Errorf("third event after %s: the burst of 2 was exceeded", at[2])
	}
	if n := testutil.ToFloat64(h.m.RateLimited.WithLabelValues("slack")); n < 7 {
		t.Errorf("saker_ratelimited_total = %v, want >= 7", n)
	}
	if n := testutil.ToFloat64(h.m.Dropped.WithLabelValues("slack", "queue_full")); n != 0 {
		t.Errorf("dropped %v", n)
	}
}

func TestRateLimitValidation(t *testing.T) {
	for _, rl := range []RateLimitPolicy{{Rate: -1}, {Rate: 1, Burst: -2}} {
		p := fastPolicy()
		p.RateLimit = rl
		if err := p.Validate("slack"); err == nil || !strings.Contains(err.Error(), "slack.ratelimit.") {
			t.Errorf("%+v: %v", rl, err)
		}
	}
}

func TestReconfigureSwapsControlLive(t *testing.T) {
	h := newHarness(t, false)
	p := fastPolicy()
	p.Filter = "priority >= critical"
	p.Dedup.Window = time.Hour
	h.add(t, &recorder{name: "hook", got: make(chan *event.Event, 10)}, p)
	warn := newEvent("r") // Warning
	if got := h.eng.Route(warn, ""); len(got) != 0 {
		t.Fatalf("routed to %v before the reconfiguration", got)
	}
	dedupBefore := h.eng.byName["hook"].ctl.Load().dedup
	bad := p
	bad.Filter = "priority >>>= nonsense"
	if _, err := Prepare("hook", bad); err == nil || !strings.Contains(err.Error(), "hook.filter: column 11") {
		t.Fatalf("bad filter: %v", err)
	}
	p.Filter = "priority >= warning"
	if err := h.eng.Reconfigure("hook", mustPrepare(t, p)); err != nil {
		t.Fatal(err)
	}
	if running := h.eng.byName["hook"].ctl.Load().policy; running != p.Control {
		t.Errorf("running control %+v after Reconfigure, want %+v", running, p.Control)
	}
	if got := h.eng.Route(warn, ""); len(got) != 1 {
		t.Fatalf("routed to %v after the reconfiguration, want hook", got)
	}
	if h.eng.byName["hook"].ctl.Load().dedup != dedupBefore {
		t.Error("an unchanged dedup window lost its memory")
	}
	if err := h.eng.Reconfigure("nope", mustPrepare(t, p)); err == nil {
		t.Error("reconfigured an unknown output")
	}
}

// TestReconfigureWhileRouting runs Route and the workers against concurrent Reconfigure calls
// (for -race): every event is delivered, under either filter.
func TestReconfigureWhileRouting(t *testing.T) {
	h := newHarness(t, false)
	p := fastPolicy()
	p.MaxConcurrentRequests = 4
	p.Filter = "priority >= warning"
	rec := &recorder{name: "hook", got: make(chan *event.Event, 1000)}
	h.add(t, rec, p)
	h.eng.Start()
	defer h.stop(t, time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		q := p
		for i := 0; i < 200; i++ {
			q.Filter = []string{"priority >= warning", "priority >= notice"}[i%2]
			q.Dedup.Window = time.Duration(i%2) * time.Hour
			q.RateLimit.Rate = float64(i%2) * 1e6
			prep, err := Prepare("hook", q)
			if err == nil {
				err = h.eng.Reconfigure("hook", prep)
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	const n = 300
	for i := 0; i < n; i++ {
		ev := newEvent("r")
		ev.Output = fmt.Sprintf("distinct %d", i)
		if routes := h.eng.Route(ev, ""); len(routes) == 1 {
			h.publish(t, ev, routes...)
		} else {
			t.Fatalf("event %d routed to %v", i, routes)
		}
	}
	<-done
	for i := 0; i < n; i++ {
		select {
		case <-rec.got:
		case <-time.After(waitFor):
			t.Fatalf("%d of %d delivered", i, n)
		}
	}
}

func mustPrepare(t testing.TB, p Policy) *Prepared {
	t.Helper()
	prep, err := Prepare("test", p)
	if err != nil {
		t.Fatal(err)
	}
	return prep
}
