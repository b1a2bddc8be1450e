// Package deliverytest runs an output through the real delivery engine in tests: queue,
// workers, retries and batching as in production, with the in-memory bus.
package deliverytest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
)

// Start returns a started engine delivering to out with policy p; it logs warnings to
// stderr. The caller stops it (and may assert that Stop lost nothing).
func Start(t testing.TB, out delivery.Output, p delivery.Policy) *delivery.Engine {
	t.Helper()
	eng := delivery.NewEngine(delivery.NewMemoryBus(), metrics.New(0), nil,
		slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := eng.Add(out, p); err != nil {
		t.Fatal(err)
	}
	eng.Start()
	return eng
}

// Policy is the default delivery policy with retries fast enough for tests (20 ms, at most
// 200 ms apart, 2 s per attempt) and the given minimumpriority.
func Policy(minimumPriority string) delivery.Policy {
	p := delivery.DefaultPolicy()
	p.MinimumPriority = minimumPriority
	p.Timeout = 2 * time.Second
	p.Retry.Initial = 20 * time.Millisecond
	p.Retry.Max = 200 * time.Millisecond
	return p
}

// Publish routes ev as the pipeline does (minimumpriority) and queues it.
func Publish(t testing.TB, eng *delivery.Engine, ev *event.Event) {
	t.Helper()
	if _, err := eng.Publish(context.Background(), ev, eng.Route(ev, "")); err != nil {
		t.Fatal(err)
	}
}

// WaitFailing waits until the engine's first output reports a failed attempt, proving the
// peer was really down when the events were published.
func WaitFailing(t testing.TB, eng *delivery.Engine) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for eng.Health()[0].State != "failing" {
		if time.Now().After(deadline) {
			t.Fatal("output never failed while the peer was down")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
