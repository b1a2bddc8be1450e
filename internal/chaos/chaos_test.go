package chaos

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/testpeers"
)

// 1. The output answers 500 for a while (30 s in the long form), then recovers: every
// accepted event is delivered.
func TestOutputFailsThenRecovers(t *testing.T) {
	chaosOnly(t)
	outage, events := pick(3*time.Second, 30*time.Second), pick(300, 3000)
	out := newSink(t)
	recovered := out.failing(http.StatusInternalServerError)
	s := startSaker(t, "saker", 0, "WEBHOOK_ADDRESS="+out.url)
	began := time.Now()
	c := newTally()
	posters(4, events, "outage", func(int) string { return s.url }, c, nil).Wait()
	if c.acceptedCount() != events {
		t.Fatalf("%d of %d events accepted during the output's outage (503: %d, other: %v)", c.acceptedCount(), events, c.refused, c.other)
	}
	time.Sleep(time.Until(began.Add(outage)))
	recovered.Store(true)
	drain := waitDelivered(t, out, c.acceptedSet(), 60*time.Second)
	result(t, "output answers 500 for "+outage.String()+", then recovers (memory bus)",
		"%d of %d accepted delivered, %.1f s after the recovery; %d duplicates", events-out.missing(c.acceptedSet()), events,
		drain.Seconds(), out.duplicates())
}

// 2. One output hangs (never answers): the other outputs receive every event, the hung
// output holds at most its concurrent requests open, and saker's memory stays bounded
// because that output's queue is.
func TestHungOutputLeavesOthersUnaffected(t *testing.T) {
	chaosOnly(t)
	events, queue := pick(3000, 30000), pick(500, 10000)
	const concurrency = 8
	hung := newSink(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the sink's Close, which waits for handlers
	hung.script(func(http.ResponseWriter) int { <-release; return http.StatusOK })
	file := filepath.Join(t.TempDir(), "events.jsonl")
	s := startSaker(t, "saker", 0, "WEBHOOK_ADDRESS="+hung.url, "WEBHOOK_QUEUESIZE="+strconv.Itoa(queue),
		"WEBHOOK_WHENFULL=dropnewest", "WEBHOOK_TIMEOUT=1h", "WEBHOOK_MAXCONCURRENTREQUESTS="+strconv.Itoa(concurrency), "FILE_PATH="+file)
	c := newTally()
	posters(4, events, "hung", func(int) string { return s.url }, c, nil).Wait()
	if c.acceptedCount() != events {
		t.Fatalf("%d of %d events accepted while the webhook hangs (503: %d, other: %v)", c.acceptedCount(), events, c.refused, c.other)
	}
	var inFile map[string]bool
	testpeers.Eventually(t, 30*time.Second, func() bool {
		inFile = uuidsInFile(t, file)
		return len(inFile) >= events
	}, "the file output got %d of %d events while the webhook hangs", len(inFile), events)
	hung.mu.Lock()
	open := hung.maxIn
	hung.mu.Unlock()
	if open > concurrency {
		t.Errorf("the hung webhook has %d requests open at once, want at most maxconcurrentrequests (%d)", open, concurrency)
	}
	dropped := s.metric(`saker_dropped_total{output="webhook"`)
	if want := float64(events - queue - open); dropped < want {
		t.Errorf("webhook dropped %v events, want at least %v (events beyond its queue)", dropped, want)
	}
	rss := s.peakRSS()
	if limit := int64(pick(150, 250)) << 20; rss > limit {
		t.Errorf("peak RSS %d MB with a hung output, want under %d MB", rss>>20, limit>>20)
	}
	s.kill() // a graceful stop would wait for the hung requests
	result(t, "one output (webhook) hangs, a second (file) is healthy",
		"file got %d of %d; webhook: %d requests open (maxconcurrentrequests %d), %v dropped beyond its queue of %d; peak RSS %d MB",
		len(inFile), events, open, concurrency, dropped, queue, rss>>20)
}

func uuidsInFile(t *testing.T, path string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct{ UUID string }
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			out[ev.UUID] = true
		}
	}
	return out
}

// 3. kill -9 mid-stream with the embedded spool, then a restart on the same spool: every
// event that got a 200 is delivered; duplicates are counted.
func TestSpoolKill9MidStream(t *testing.T) {
	chaosOnly(t)
	events := pick(2000, 10000)
	out := newSink(t)
	// A slow output (4 x 5ms: about 800 events/s), so a backlog is stored and being
	// delivered when the process is killed.
	out.script(func(http.ResponseWriter) int { time.Sleep(5 * time.Millisecond); return http.StatusOK })
	spool := filepath.Join(t.TempDir(), "spool")
	env := []string{"WEBHOOK_ADDRESS=" + out.url, "WEBHOOK_MAXCONCURRENTREQUESTS=4", "SPOOL_PATH=" + spool}
	s := startSaker(t, "saker-1", 0, env...)
	c := newTally()
	stop := make(chan struct{})
	wg := posters(4, events, "kill9", func(int) string { return s.url }, c, stop)
	testpeers.Eventually(t, 60*time.Second, func() bool { return c.acceptedCount() >= events/2 }, "half the events accepted")
	s.kill()
	close(stop)
	wg.Wait()
	before := c.acceptedCount()
	delivered := before - out.missing(c.acceptedSet())
	restarted := time.Now()
	s = startSaker(t, "saker-2", s.port, env...)
	// The rest of the stream goes to the restarted process.
	rest := newTally()
	restWG := posters(4, events, "kill9-after", func(int) string { return s.url }, rest, nil)
	// What the killed process accepted comes first: its events in flight are handed out
	// again at once (not after the ack wait), while new events keep coming.
	waitDelivered(t, out, c.acceptedSet(), 60*time.Second)
	backlog := time.Since(restarted)
	restWG.Wait()
	all := c.acceptedSet()
	for u := range rest.acceptedSet() {
		all[u] = true
	}
	waitDelivered(t, out, all, 60*time.Second)
	caughtUp := time.Since(restarted)
	result(t, "kill -9 mid-stream with the embedded spool, restart",
		"%d accepted before the kill (%d of them delivered before it), %d after the restart; every one before the kill delivered %.1f s after the restart, %d of %d in all (the last %.1f s after it); %d duplicates",
		before, delivered, rest.acceptedCount(), backlog.Seconds(), len(all)-out.missing(all), len(all), caughtUp.Seconds(), out.duplicates())
}

// 4. Spool full (spool.maxbytes): the input answers 503 with Retry-After; nothing accepted
// is lost once the output recovers, and the input accepts again once the spool drained.
func TestSpoolFull(t *testing.T) {
	chaosOnly(t)
	maxBytes := pick(256<<10, 4<<20)
	out := newSink(t)
	recovered := out.failing(http.StatusServiceUnavailable)
	s := startSaker(t, "saker", 0, "WEBHOOK_ADDRESS="+out.url, "SPOOL_PATH="+filepath.Join(t.TempDir(), "spool"),
		"SPOOL_MAXBYTES="+strconv.Itoa(maxBytes))
	c := newTally()
	for i := 0; c.refused < 50; i++ {
		if i > maxBytes/100 {
			t.Fatalf("%d events posted to a spool of %d bytes and none refused", i, maxBytes)
		}
		code, ra := post(s.url, "full-"+strconv.Itoa(i))
		c.add("full-"+strconv.Itoa(i), code, ra)
	}
	if c.retryAfter != c.refused || len(c.other) > 0 || c.failed > 0 {
		t.Errorf("refusals: %d 503 of which %d with Retry-After, other answers %v, %d failed", c.refused, c.retryAfter, c.other, c.failed)
	}
	counted := s.metric(`saker_input_unavailable_total{source="requests"}`)
	if int(counted) != c.refused {
		t.Errorf("saker_input_unavailable_total = %v, the client got %d 503s", counted, c.refused)
	}
	recovered.Store(true)
	drain := waitDelivered(t, out, c.acceptedSet(), 60*time.Second)
	testpeers.Eventually(t, 30*time.Second, func() bool { code, _ := post(s.url, "full-after"); return code == http.StatusOK },
		"the input still refuses events once the spool drained")
	result(t, "spool full ("+strconv.Itoa(maxBytes>>10)+" KiB), output answering 503",
		"%d accepted, then %d refused with 503 + Retry-After (all counted); %d of %d delivered %.1f s after the output recovered; accepting again once drained",
		c.acceptedCount(), c.refused, c.acceptedCount()-out.missing(c.acceptedSet()), c.acceptedCount(), drain.Seconds())
}

// 5. A 429 storm with Retry-After: the output waits as long as it is told between attempts
// (the retry backoff alone would retry within 500ms), then delivers everything.
func TestTooManyRequestsStorm(t *testing.T) {
	chaosOnly(t)
	storm, events := pick(4*time.Second, 30*time.Second), pick(20, 200)
	const retryAfter = 2 * time.Second
	out := newSink(t)
	var over atomic.Bool
	out.script(func(w http.ResponseWriter) int {
		if over.Load() {
			return http.StatusOK
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
		return http.StatusTooManyRequests
	})
	s := startSaker(t, "saker", 0, "WEBHOOK_ADDRESS="+out.url)
	began := time.Now()
	c := newTally()
	posters(4, events, "storm", func(int) string { return s.url }, c, nil).Wait()
	time.Sleep(time.Until(began.Add(storm)))
	over.Store(true)
	waitDelivered(t, out, c.acceptedSet(), 30*time.Second)
	out.mu.Lock()
	defer out.mu.Unlock()
	shortest, attempts := time.Hour, 0
	for _, at := range out.attempts {
		attempts += len(at)
		for i := 1; i < len(at); i++ {
			shortest = min(shortest, at[i].Sub(at[i-1]))
		}
	}
	// Allow for the sink's and the client's clocks reading the same instant a little apart.
	if shortest < retryAfter-100*time.Millisecond {
		t.Errorf("an event was retried %s after a 429 asking for Retry-After: %s", shortest, retryAfter)
	}
	result(t, "429 with Retry-After: 2 for "+storm.String(),
		"%d of %d delivered; %d attempts in all, shortest gap between two attempts of one event %.2f s (the backoff alone: under 0.5 s)",
		events-countMissing(out, c.acceptedSet()), events, attempts, shortest.Seconds())
}

// countMissing is sink.missing for a caller holding the sink's lock.
func countMissing(s *sink, want map[string]bool) int {
	n := 0
	for u := range want {
		if s.delivered[u] == 0 {
			n++
		}
	}
	return n
}

// 6. Two replicas on an external NATS server started by the test: the events are spread
// over both, one replica is kill -9'ed halfway; every event is delivered at least once.
func TestReplicaKilledHalfway(t *testing.T) {
	chaosOnly(t)
	events := pick(2000, 10000)
	port := testpeers.FreePort(t)
	startNATS(t, port, t.TempDir())
	out := newSink(t)
	// A slow output, so the killed replica holds events being delivered.
	out.script(func(http.ResponseWriter) int { time.Sleep(5 * time.Millisecond); return http.StatusOK })
	env := []string{"WEBHOOK_ADDRESS=" + out.url, "WEBHOOK_MAXCONCURRENTREQUESTS=4", "BUS_JETSTREAM_URL=nats://127.0.0.1:" + strconv.Itoa(port),
		"BUS_JETSTREAM_ACKWAIT=" + pick("3s", "15s")}
	a := startSaker(t, "replica-a", 0, env...)
	b := startSaker(t, "replica-b", 0, env...)
	var aDead atomic.Bool
	target := func(i int) string {
		if i%2 == 0 && !aDead.Load() {
			return a.url
		}
		return b.url
	}
	c := newTally()
	stop := make(chan struct{})
	wg := posters(8, events/2, "replicas-1", target, c, stop)
	wg.Wait()
	aDead.Store(true)
	a.kill()
	killed := time.Now()
	backlog := out.missing(c.acceptedSet())
	// The second half goes to the surviving replica (a client retries what A dropped).
	posters(8, events/2, "replicas-2", target, c, nil).Wait()
	if got := c.acceptedCount(); got != events {
		t.Errorf("%d of %d events accepted (503: %d, failed: %d, other %v)", got, events, c.refused, c.failed, c.other)
	}
	waitDelivered(t, out, c.acceptedSet(), 90*time.Second)
	result(t, "external JetStream, two replicas, "+strconv.Itoa(events)+" events, one kill -9'ed halfway",
		"%d not delivered yet at the kill; %d of %d accepted events delivered, the last %.1f s after the kill (ack wait %s); %d duplicates",
		backlog, c.acceptedCount()-out.missing(c.acceptedSet()), c.acceptedCount(), time.Since(killed).Seconds(), pick("3s", "15s"), out.duplicates())
}

// 7. The NATS server is stopped and restarted (same port and store) under load: the input
// answers 503 while it is down, and no accepted event is lost.
func TestNATSRestartUnderLoad(t *testing.T) {
	chaosOnly(t)
	down := pick(2*time.Second, 10*time.Second)
	port := testpeers.FreePort(t)
	store := t.TempDir()
	nats := startNATS(t, port, store)
	out := newSink(t)
	s := startSaker(t, "saker", 0, "WEBHOOK_ADDRESS="+out.url, "BUS_JETSTREAM_URL=nats://127.0.0.1:"+strconv.Itoa(port))
	c := newTally()
	stop := make(chan struct{})
	wg := posters(2, 1<<30, "natsrestart", func(int) string { return s.url }, c, stop)
	time.Sleep(time.Second)
	nats.Stop()
	stopped := time.Now()
	before := c.acceptedCount()
	time.Sleep(down)
	c.mu.Lock()
	refusedWhileDown, acceptedWhileDown := c.refused, len(c.accepted)-before
	c.mu.Unlock()
	startNATS(t, port, store)
	back := time.Since(stopped)
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	if refusedWhileDown == 0 {
		t.Errorf("no 503 while NATS was down for %s", down)
	}
	if c.retryAfter != c.refused || c.failed > 0 || len(c.other) > 0 {
		t.Errorf("refusals: %d 503 of which %d with Retry-After, other answers %v, %d failed", c.refused, c.retryAfter, c.other, c.failed)
	}
	waitDelivered(t, out, c.acceptedSet(), 60*time.Second)
	result(t, "NATS server stopped "+down.String()+" and restarted under load",
		"%d of %d accepted delivered; %d answered 503 + Retry-After (NATS down %.1f s; %d accepted while it was down, from requests in flight at the stop); %d duplicates",
		c.acceptedCount()-out.missing(c.acceptedSet()), c.acceptedCount(), c.refused, back.Seconds(), acceptedWhileDown, out.duplicates())
}
