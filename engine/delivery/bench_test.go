package delivery

import (
	"context"
	"sync"
	"testing"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
)

// counting delivers at once and counts down a WaitGroup per event.
type counting struct {
	name string
	wg   *sync.WaitGroup
}

func (c counting) Name() string                             { return c.name }
func (c counting) Send(context.Context, *event.Event) error { c.wg.Done(); return nil }

// BenchmarkPublishDeliver is the engine's own cost per event: publish to two outputs'
// queues and let their workers deliver to outputs that return at once.
func BenchmarkPublishDeliver(b *testing.B) {
	var wg sync.WaitGroup
	eng := NewEngine(NewMemoryBus(), metrics.New(0), nil, quietLog())
	p := DefaultPolicy()
	for _, name := range []string{"a", "b"} {
		if err := eng.Add(counting{name: name, wg: &wg}, p); err != nil {
			b.Fatal(err)
		}
	}
	eng.Start()
	defer eng.Stop(waitFor)
	targets := []string{"a", "b"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		wg.Add(2)
		if _, err := eng.Publish(ctx, newEvent("bench"), targets); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
}
