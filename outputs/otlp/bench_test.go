package otlp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// BenchmarkSendBatch measures the CPU of one batch of 100 events per signal over HTTP to a
// local receiver that reads and discards (building the items, encoding, the request).
func BenchmarkSendBatch(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	defer srv.Close()
	base := Config{Endpoint: srv.URL, Protocol: HTTPProtobuf, CheckCert: true}
	evs := make([]*event.Event, 100)
	for i := range evs {
		evs[i] = &event.Event{UUID: fmt.Sprintf("u%d", i), Rule: "Terminal shell in container", Priority: event.Notice,
			Output: "A shell was spawned in a container with an attached terminal (user=root shell=bash)", Time: time.Now(),
			Source: "syscalls", Hostname: "node-1", Tags: []string{"container", "shell"},
			OutputFields: map[string]any{"k8s.ns.name": "default", "k8s.pod.name": fmt.Sprintf("pod-%d", i%10),
				"proc.name": "bash", "user.name": "root", "container.id": "abc123"}}
	}
	tr, _ := NewTraces(&TracesConfig{Config: base, Duration: 1000}, outputs.Env{})
	lg, _ := NewLogs(&LogsConfig{Config: base}, outputs.Env{})
	mt, _ := NewMetrics(&MetricsConfig{Config: base}, outputs.Env{})
	for name, o := range map[string]delivery.BatchSender{"traces": tr, "logs": lg, "metrics": mt} {
		b.Run(name, func(b *testing.B) {
			start := cpuTime()
			defer func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N*len(evs)), "cpu-ns/event") }()
			for i := 0; i < b.N; i++ {
				if name == "metrics" { // new events each time, as in production
					for j, ev := range evs {
						ev.UUID = fmt.Sprintf("%d-%d", i, j)
					}
				}
				if err := o.SendBatch(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// cpuTime is the process's user and system CPU time (the receiver's included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
