package audit

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. Benchmarks report rates per CPU second
// as well as per wall second, because wall time on a shared machine measures the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU time between start and report.
type cpuMeter struct{ start time.Duration }

func startCPU() cpuMeter { return cpuMeter{cpuTime()} }

// report adds the events per CPU second for n events.
func (m cpuMeter) report(b *testing.B, n int) time.Duration {
	d := cpuTime() - m.start
	if d > 0 {
		b.ReportMetric(float64(n)/d.Seconds(), "events/cpu-s")
	}
	return d
}
