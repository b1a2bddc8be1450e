package deliverytest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
)

// Event is test event i: uuid ...-<i>, output "saker test event <i>" (as DownThenUp's).
func Event(i int) *event.Event {
	return &event.Event{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Output: fmt.Sprintf("saker test event %02d", i),
		Priority: event.Error, Rule: "Write below binary dir", Time: time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC),
		Source: "syscall", Hostname: "h", OutputFields: map[string]any{"fd.name": "/bin/x"}}
}

// Received checks that each of Event(0)..Event(n-1) is among the payloads received, as its
// Falco JSON: exactly once when once is true, at least once otherwise.
func Received(t testing.TB, payloads []string, n int, once bool) {
	t.Helper()
	count := map[string]int{}
	for _, p := range payloads {
		count[p]++
	}
	for i := range n {
		c := count[string(Event(i).JSON())]
		if c == 0 || (once && c != 1) {
			t.Errorf("event %d received %d times", i, c)
		}
	}
}

// FailsWithin holds a send to a peer that never answers to its context: it must fail with a
// transient error about when the 300ms context ends, and not show secret.
func FailsWithin(t testing.TB, send func(ctx context.Context) error, secret string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := send(ctx)
	if err == nil || delivery.IsPermanent(err) {
		t.Fatalf("send to a silent peer: %v, want a transient error", err)
	}
	if secret != "" && strings.Contains(err.Error(), secret) {
		t.Errorf("error shows a secret: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("send returned after %s, want about the 300ms deadline", d)
	}
}

// Invalid checks a configuration's Validate error: none when want is "", else one naming
// want; never one showing a secret.
func Invalid(t testing.TB, cfg any, err error, want string, secrets ...string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%+v: %v", cfg, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%+v: error %v, want one naming %s", cfg, err, want)
	}
	for _, s := range secrets {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("error shows a secret: %v", err)
		}
	}
}

// QueueWhileDown starts an engine delivering to out (its peer down), queues Event(0) to
// Event(n-1) and returns once the output has failed at least once: the caller then brings
// the peer up, reads the events back and calls StopLosingNothing.
func QueueWhileDown(t testing.TB, out delivery.Output, p delivery.Policy, n int) *delivery.Engine {
	t.Helper()
	eng := Start(t, out, p)
	for i := range n {
		Publish(t, eng, Event(i))
	}
	WaitFailing(t, eng)
	return eng
}

// StopLosingNothing stops eng, failing the test if an event was still queued.
func StopLosingNothing(t testing.TB, eng *delivery.Engine) {
	t.Helper()
	if lost := eng.Stop(2 * time.Second); lost != 0 {
		t.Errorf("%d events lost at stop", lost)
	}
}
