package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/testpeers"
)

// sakerBin is the binary under test: $SAKER_BIN (an absolute path; make chaos passes bin/saker), or one built
// by TestMain.
var sakerBin string

// long is the form of every scenario (SAKER_CHAOS=long, make chaos).
var long = os.Getenv("SAKER_CHAOS") == "long"

func TestMain(m *testing.M) {
	if p := os.Getenv("SAKER_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sakerBin = abs
		os.Exit(m.Run())
	}
	testpeers.RunWithBinary(m, &sakerBin, "../../cmd/saker")
}

// pick is the short form's value, or the long form's under SAKER_CHAOS=long.
func pick[T any](short, longForm T) T {
	if long {
		return longForm
	}
	return short
}

// chaosOnly skips the suite under go test -short (make test-short): it starts processes and
// takes tens of seconds.
func chaosOnly(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos suite: skipped under -short (make chaos runs the long form)")
	}
}

// result prints the scenario's row of the table in docs/reliability.md.
func result(t *testing.T, scenario, format string, args ...any) {
	t.Helper()
	form := "short"
	if long {
		form = "long"
	}
	t.Logf("RESULT | %s | %s | %s |", scenario, form, fmt.Sprintf(format, args...))
}

// eventBody is a Falco event with a uuid of the test's choosing, so the sinks can tell the
// events apart.
func eventBody(uuid string) []byte {
	return []byte(`{"uuid":"` + uuid + `","output":"16:31:56.746609046: Error File below a known binary directory opened for writing (user=root command=touch /bin/hack file=/bin/hack)","hostname":"chaos","priority":"Error","rule":"Write below binary dir","time":"2019-05-17T15:31:56.746609046Z","output_fields":{"evt.time":1507591916746609046,"fd.name":"/bin/hack","proc.cmdline":"touch /bin/hack","user.name":"root"}}`)
}

// saker is one bin/saker process.
type saker struct {
	t    *testing.T
	name string
	url  string
	port int
	proc *testpeers.Proc
}

// sakerEnv configures saker for the suite: no stdout output, fast retries.
func sakerEnv(port int, extra ...string) []string {
	return append([]string{"STDOUT_ENABLED=false", "LISTENADDRESS=127.0.0.1", "LISTENPORT=" + strconv.Itoa(port),
		"RETRY_INITIAL=50ms", "RETRY_MAX=500ms"}, extra...)
}

// startSaker runs bin/saker on port (0: a free one) and waits until /ping answers.
func startSaker(t *testing.T, name string, port int, env ...string) *saker {
	t.Helper()
	if port == 0 {
		port = testpeers.FreePort(t)
	}
	s := &saker{t: t, name: name, port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	s.proc = testpeers.Start(t, name, []string{sakerBin}, sakerEnv(port, env...),
		func() bool { return testpeers.HTTPOK(s.url + "/ping") }, 30*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			out := s.proc.Output()
			t.Logf("%s output (end):\n%s", name, out[max(len(out)-4000, 0):])
		}
	})
	return s
}

// kill is kill -9.
func (s *saker) kill() { s.proc.Kill() }

// peakRSS is the process's peak resident set (VmHWM) in bytes.
func (s *saker) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.proc.Pid()))
	if err != nil {
		s.t.Fatalf("read %s's status: %v", s.name, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	s.t.Fatalf("no VmHWM in %s's status", s.name)
	return 0
}

// metric sums the samples of a metric whose line starts with prefix (name and labels).
func (s *saker) metric(prefix string) float64 {
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		s.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// client posts events; a short timeout so a dead process is an error, not a hang.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// post sends one event and returns the status (0 when the request failed: connection refused
// after kill -9) and the Retry-After header.
func post(url, uuid string) (int, string) {
	resp, err := client.Post(url+"/", "application/json", bytes.NewReader(eventBody(uuid)))
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// tally counts what the posters got back.
type tally struct {
	mu         sync.Mutex
	accepted   map[string]bool
	refused    int // 503
	retryAfter int // 503s carrying Retry-After
	failed     int // no answer (the process was killed)
	other      map[int]int
}

func newTally() *tally { return &tally{accepted: map[string]bool{}, other: map[int]int{}} }

func (c *tally) add(uuid string, code int, retryAfter string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch code {
	case http.StatusOK:
		c.accepted[uuid] = true
	case http.StatusServiceUnavailable:
		c.refused++
		if retryAfter != "" {
			c.retryAfter++
		}
	case 0:
		c.failed++
	default:
		c.other[code]++
	}
}

func (c *tally) acceptedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.accepted)
}

func (c *tally) acceptedSet() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]bool, len(c.accepted))
	for k := range c.accepted {
		out[k] = true
	}
	return out
}

// sink is a webhook endpoint whose answer the test scripts; it counts the attempts and the
// successful deliveries of each event.
type sink struct {
	srv *httptest.Server
	url string
	// answer decides the status of one attempt (nil: 200); it may block (a hung output).
	answer atomic.Pointer[func(w http.ResponseWriter) int]

	mu        sync.Mutex
	delivered map[string]int         // 2xx answers per uuid
	attempts  map[string][]time.Time // every attempt per uuid
	inflight  int
	maxIn     int
}

func newSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{delivered: map[string]int{}, attempts: map[string][]time.Time{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.url = s.srv.URL + "/"
	t.Cleanup(s.srv.Close)
	return s
}

// script sets how the sink answers from now on.
func (s *sink) script(f func(w http.ResponseWriter) int) { s.answer.Store(&f) }

// failing makes the sink answer status until the returned flag is set, then 200.
func (s *sink) failing(status int) *atomic.Bool {
	var recovered atomic.Bool
	s.script(func(http.ResponseWriter) int {
		if recovered.Load() {
			return http.StatusOK
		}
		return status
	})
	return &recovered
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var ev struct{ UUID string }
	_ = json.Unmarshal(b, &ev)
	s.mu.Lock()
	s.attempts[ev.UUID] = append(s.attempts[ev.UUID], time.Now())
	s.inflight++
	s.maxIn = max(s.maxIn, s.inflight)
	s.mu.Unlock()
	code := http.StatusOK
	if f := s.answer.Load(); f != nil {
		code = (*f)(w)
	}
	s.mu.Lock()
	s.inflight--
	if code < 300 {
		s.delivered[ev.UUID]++
	}
	s.mu.Unlock()
	w.WriteHeader(code)
}

// missing is how many of want were never delivered.
func (s *sink) missing(want map[string]bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for u := range want {
		if s.delivered[u] == 0 {
			n++
		}
	}
	return n
}

// duplicates is the deliveries beyond the first, over every event.
func (s *sink) duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.delivered {
		n += max(c-1, 0)
	}
	return n
}

// waitDelivered waits until every event of want was delivered, failing with the count of
// those missing after timeout.
func waitDelivered(t *testing.T, s *sink, want map[string]bool, timeout time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	testpeers.Eventually(t, timeout, func() bool { return s.missing(want) == 0 },
		"%d of %d accepted events never delivered", s.missing(want), len(want))
	return time.Since(began)
}

// startNATS runs a nats-server with JetStream on port, its store in store.
func startNATS(t *testing.T, port int, store string) *testpeers.Proc {
	t.Helper()
	bin := testpeers.Bin(t, "nats-server")
	return testpeers.Start(t, "nats-server", []string{bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", store},
		nil, func() bool { return testpeers.PortOpen(port) }, 20*time.Second)
}

// posters runs n goroutines posting uuids prefix-0 .. prefix-(total-1), each to target(i),
// until every uuid was posted once (whatever the answer) or stop is closed.
func posters(n, total int, prefix string, target func(i int) string, c *tally, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				uuid := prefix + "-" + strconv.Itoa(i)
				code, ra := post(target(i), uuid)
				c.add(uuid, code, ra)
			}
		}()
	}
	return &wg
}
