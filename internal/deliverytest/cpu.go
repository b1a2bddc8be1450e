package deliverytest

import (
	"syscall"
	"testing"
	"time"
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
