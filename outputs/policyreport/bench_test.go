package policyreport

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/testpeers"
)

// cpuTime is this process's user+system CPU time: saker's side only (the API server is
// another process), and not the neighbours' as wall time on a shared machine would be.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSend: CPU per event of adding a result to a full report of 100 results (every
// event reads and rewrites the whole report, so the cost grows with maxevents; filling a
// report of 1000 takes minutes of API server and etcd time on a loaded machine).
func BenchmarkSend(b *testing.B) {
	k := testpeers.StartKubeAPIServer(b)
	a := newAdmin(b, k)
	a.installCRDs()
	kc := kubeconfig(b, k.URL, k.Token, "insecure-skip-tls-verify: true")
	for _, max := range []int{100} {
		b.Run(fmt.Sprintf("maxevents=%d", max), func(b *testing.B) {
			ns := fmt.Sprintf("bench-%d", max)
			a.namespace(ns)
			o := newOutput(b, &Config{Kubeconfig: kc, MaxEvents: max})
			e := ev("Error A shell was spawned in a container with an attached terminal (user=root shell=bash parent=runc cmdline=bash -il)", event.Error, ns)
			e.OutputFields["proc.cmdline"], e.OutputFields["container.id"] = "bash -il", "0123456789ab"
			for i := range max {
				e.Time = e.Time.Add(time.Duration(i))
				if err := o.Send(context.Background(), e); err != nil {
					b.Fatal(err)
				}
			}
			start := cpuTime()
			b.ResetTimer()
			for i := range b.N {
				e.Time = e.Time.Add(time.Duration(max + i))
				if err := o.Send(context.Background(), e); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-us/event")
		})
	}
}
