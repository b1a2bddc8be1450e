package store

import (
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// benchEvents is the number of events the query benchmarks run against; SAKER_STORE_BENCH_EVENTS
// changes it.
func benchEvents() int {
	if n, err := strconv.Atoi(os.Getenv("SAKER_STORE_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

var benchWords = strings.Fields("alpha beta gamma delta nginx redis kube-system default monitoring payments bash sh curl wget python node touch cat etc passwd shadow bin hack tmp root www-data")

// genEvent makes a Falco-like event: 60 rules with a skewed distribution, 8 priorities, 3
// sources, 100 hosts, two tags out of 40, an output line and fields with high-cardinality
// values (pod names, pids).
func genEvent(r *rand.Rand, i int) *event.Event {
	rule := int(r.ExpFloat64()*8) % 60
	w := func() string { return benchWords[r.Intn(len(benchWords))] }
	pod := fmt.Sprintf("%s-%d", w(), r.Intn(100000))
	out := fmt.Sprintf("12:00:00.000000000: Warning rule %d happened (user=%s command=%s %s pod=%s ns=%s file=/%s/%s pid=%d)",
		rule, w(), w(), w(), pod, w(), w(), w(), r.Intn(1<<22))
	return &event.Event{UUID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, r.Int63n(1<<48)), Output: out,
		Priority: event.Priority(1 + r.Intn(8)), Rule: fmt.Sprintf("Rule number %d", rule),
		Time: time.Unix(1700000000, 0), Source: []string{"syscall", "k8s_audit", "aws_cloudtrail"}[r.Intn(3)],
		Hostname: fmt.Sprintf("host-%d", r.Intn(100)), Tags: []string{"tag" + strconv.Itoa(r.Intn(20)), "mitre" + strconv.Itoa(20+r.Intn(20))},
		OutputFields: map[string]any{"proc.cmdline": w() + " " + w(), "k8s.pod.name": pod, "user.name": w(), "proc.pid": r.Intn(1 << 22)}}
}

// clock is a settable clock safe to read from the store's writer.
type clock struct{ ms atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }

func (c *clock) set(t time.Time) { c.ms.Store(t.UnixNano()) }
func (c *clock) Now() time.Time  { return time.Unix(0, c.ms.Load()) }

// fill adds n events spread evenly over the 7 days before now (store time, set on clk).
func fill(s *Store, clk *clock, n int, now time.Time) {
	r := rand.New(rand.NewSource(1))
	span := 7 * 24 * time.Hour
	batch := make([]item, 0, 512)
	for i := 0; i < n; i++ {
		batch = append(batch, item{ev: genEvent(r, i), outputs: []string{"slack", "loki"}})
		if len(batch) == cap(batch) || i == n-1 {
			at := now.Add(-span + time.Duration(float64(span)*float64(i)/float64(n)))
			clk.set(at)
			s.add(batch)
			batch = batch[:0]
		}
	}
	clk.set(now)
}

var (
	benchOnce  sync.Once
	benchStore *Store
	benchNow   time.Time
	benchBuild time.Duration
)

func loadedStore(b *testing.B) *Store {
	benchOnce.Do(func() {
		// In memory by default (the most RSS); SAKER_STORE_BENCH_PATH keeps the store in that
		// file, left behind for saker to open (ui.storage.path).
		path := os.Getenv("SAKER_STORE_BENCH_PATH")
		benchNow = time.Now()
		clk := newClock(benchNow)
		s, err := Open(Options{Path: path, MaxEvents: 1_000_000, MaxAge: 8 * 24 * time.Hour, Now: clk.Now, Log: quietLog()})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		fill(s, clk, benchEvents(), benchNow)
		benchBuild = time.Since(start)
		runtime.GC()
		benchStore = s
		if path != "" {
			b.Cleanup(func() { _ = s.Close() })
		}
	})
	return benchStore
}

// cpuTime is the process's user and system CPU time: on a shared machine it is steadier than
// the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkQueries measures the API's queries against a store of benchEvents() events (one
// million by default), built once: each sub-benchmark reports ms per query, the number of
// events stored and the process RSS.
func BenchmarkQueries(b *testing.B) {
	s := loadedStore(b)
	st := s.Stats()
	b.Logf("store built with %d events in %s (%.0f events/s); %d blocks, %.0f compressed bytes an event; RSS %.0f MB",
		benchEvents(), benchBuild.Round(time.Millisecond), float64(benchEvents())/benchBuild.Seconds(), st.Blocks,
		float64(st.Bytes)/float64(st.Events), rssMB())
	day := benchNow.Add(-24 * time.Hour)
	cases := []struct {
		name string
		run  func() error
	}{
		{"search/page1", func() error { _, err := s.Search(Query{}, 0, 50); return err }},
		{"search/page100", func() error { _, err := s.Search(Query{}, 99*50, 50); return err }},
		{"search/priority+rule", func() error {
			_, err := s.Search(Query{Priorities: []string{"critical"}, Rules: []string{"Rule number 5"}}, 0, 50)
			return err
		}},
		{"search/tags+since24h", func() error { _, err := s.Search(Query{Tags: []string{"tag3"}, Since: day}, 0, 50); return err }},
		{"search/text-common", func() error { _, err := s.Search(Query{Text: "nginx"}, 0, 50); return err }},
		{"search/text-rare", func() error { _, err := s.Search(Query{Text: "nginx-4242"}, 0, 50); return err }},
		{"search/text+priority", func() error {
			_, err := s.Search(Query{Text: "curl", Priorities: []string{"error"}, Since: day}, 0, 50)
			return err
		}},
		{"count/all", func() error { _, _, err := s.Count(Query{}); return err }},
		{"count/text-rare", func() error { _, _, err := s.Count(Query{Text: "payments-777"}); return err }},
	}
	for _, g := range GroupBy {
		cases = append(cases, struct {
			name string
			run  func() error
		}{"countby/" + g, func() error { _, _, err := s.CountBy(Query{}, g); return err }})
	}
	cases = append(cases, struct {
		name string
		run  func() error
	}{"timeline/7d-by-priority", func() error {
		_, _, err := s.Timeline(Query{}, benchNow.Add(-7*24*time.Hour), benchNow, 84)
		return err
	}}, struct {
		name string
		run  func() error
	}{"get/uuid", func() error { _, _, err := s.Get(fmt.Sprintf("%08x", benchEvents()/2)); return err }})
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/query")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/query")
			b.ReportMetric(float64(s.Stats().Events), "events")
			b.ReportMetric(rssMB(), "MB-RSS")
		})
	}
}

// BenchmarkAdd measures the store's cost per event on the ingest side (the writer goroutine):
// the record, the index, and the block's bloom filter and compression at each seal.
func BenchmarkAdd(b *testing.B) {
	s, err := Open(Options{Log: quietLog(), MaxEvents: 100000})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewSource(1))
	evs := make([]*event.Event, 4096)
	for i := range evs {
		evs[i] = genEvent(r, i)
		_ = evs[i].JSON() // encoded once by the outputs anyway
	}
	b.ReportAllocs()
	b.ResetTimer()
	batch := make([]item, 0, 64)
	for i := 0; i < b.N; i++ {
		batch = append(batch, item{ev: evs[i%len(evs)]})
		if len(batch) == cap(batch) {
			s.add(batch)
			batch = batch[:0]
		}
	}
}
