package deliverytest

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
)

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CPUPerEvent runs send, which delivers events events, and reports the process's CPU time
// per event ("cpu-µs/event"): on a shared machine it is steadier than the wall clock, and
// with a server in another process it is the output's own cost.
func CPUPerEvent(b *testing.B, events int, send func()) {
	b.Helper()
	start := cpuTime()
	b.ResetTimer()
	send()
	b.StopTimer()
	if d := cpuTime() - start; events > 0 {
		b.ReportMetric(float64(d.Microseconds())/float64(events), "cpu-µs/event")
	}
}

// BenchBatches sends b.N batches of size events (Event(0)...) with out and reports the CPU
// per event.
func BenchBatches(b *testing.B, out delivery.BatchSender, size int) {
	b.Helper()
	batch := make([]*event.Event, size)
	for i := range batch {
		batch[i] = Event(i)
	}
	CPUPerEvent(b, b.N*size, func() {
		for range b.N {
			if err := out.SendBatch(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}
