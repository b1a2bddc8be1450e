package httpin

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
)

// fastListener is a Server behind its fasthttp listener, as the daemon runs it.
type fastListener struct {
	srv  *Server
	addr string
	m    *metrics.Metrics
}

// newFastListener serves POST / (maxbodysize 4096) and mounts extra routes before the
// listener opens.
func newFastListener(t *testing.T, opts Options, mount func(s *Server)) *fastListener {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	m := metrics.New(0)
	eng := delivery.NewEngine(delivery.NewMemoryBus(), m, nil, log)
	out := &sink{"a", make(chan *event.Event, 1000)}
	p := delivery.DefaultPolicy()
	if err := eng.Add(out, p); err != nil {
		t.Fatal(err)
	}
	eng.Start()
	t.Cleanup(func() { eng.Stop(time.Second) })
	if opts.MaxBodySize == 0 {
		opts.MaxBodySize = 4096
	}
	s := newServer(t, opts, eng, m, log)
	if mount != nil {
		mount(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := s.NewFastServer(log)
	go func() { _ = fs.Serve(ln) }()
	t.Cleanup(func() { _ = fs.Shutdown() })
	return &fastListener{srv: s, addr: ln.Addr().String(), m: m}
}

// raw sends head (and body, unless nil) on a new connection and returns the status and
// body of the answer, read as soon as it comes.
func (f *fastListener) raw(t *testing.T, head string, body []byte) (int, string, http.Header) {
	t.Helper()
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	if body != nil {
		if _, err := c.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (f *fastListener) rejected(source string) float64 {
	return testutil.ToFloat64(f.m.Inputs.WithLabelValues(source, "rejected"))
}

// echoLength answers with the length of the body it read.
var echoLength = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprint(w, n)
})

// chunked encodes body as one chunk per 16 KiB.
func chunked(body []byte) []byte {
	var b bytes.Buffer
	for len(body) > 0 {
		n := min(len(body), 16<<10)
		fmt.Fprintf(&b, "%x\r\n", n)
		b.Write(body[:n])
		b.WriteString("\r\n")
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

func TestBodyLimitsPerPath(t *testing.T) {
	f := newFastListener(t, Options{}, func(s *Server) {
		s.HandleRoute("/big", echoLength, Route{MaxBody: 64 << 10, LimitKey: "big.max", Source: "big"})
	})

	// A body announced larger than POST /'s limit is refused from the headers alone: the
	// answer comes although the 50 MB never follow.
	status, body, h := f.raw(t, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n[[[[", nil)
	if status != 413 || !strings.Contains(body, "body of 50000000 bytes is larger than the 4096 bytes limit (maxbodysize)") {
		t.Fatalf("announced 50 MB: %d %s", status, body)
	}
	if h.Get("Content-Type") != "application/json" {
		t.Errorf("413 headers %v", h)
	}
	if got := f.rejected("requests"); got != 1 {
		t.Errorf("rejected{source=requests} = %v, want 1", got)
	}

	// The same limit holds for a chunked body, cut off while it is read.
	status, body, _ = f.raw(t, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", chunked(bytes.Repeat([]byte("x"), 100<<10)))
	if status != 413 || !strings.Contains(body, "larger than the 4096 bytes limit (maxbodysize)") {
		t.Errorf("chunked 100 KiB to /: %d %s", status, body)
	}

	// A path with its own, larger limit takes bodies POST / refuses, announced or chunked...
	big := bytes.Repeat([]byte("y"), 60<<10)
	for _, enc := range []string{"length", "chunked"} {
		head, b := fmt.Sprintf("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(big)), big
		if enc == "chunked" {
			head, b = "POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", chunked(big)
		}
		if status, body, _ := f.raw(t, head, b); status != 200 || body != strconv.Itoa(len(big)) {
			t.Errorf("60 KiB to /big (%s): %d %s", enc, status, body)
		}
	}
	// The path is matched as the handler sees it (decoded, without the query), however the
	// client spelt it.
	for _, spelling := range []string{"/%62ig", "/big?x=1"} {
		head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", spelling, len(big))
		if status, body, _ := f.raw(t, head, big); status != 200 || body != strconv.Itoa(len(big)) {
			t.Errorf("60 KiB to %s: %d %s", spelling, status, body)
		}
	}
	// ...and refuses what is larger than its own, naming its key and counting its source.
	status, body, _ = f.raw(t, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n", nil)
	if status != 413 || !strings.Contains(body, "larger than the 65536 bytes limit (big.max)") {
		t.Errorf("70 KB to /big: %d %s", status, body)
	}
	status, body, _ = f.raw(t, "POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", chunked(bytes.Repeat([]byte("z"), 100<<10)))
	if status != 413 || !strings.Contains(body, "(big.max)") {
		t.Errorf("chunked 100 KiB to /big: %d %s", status, body)
	}
	if got := f.rejected("big"); got != 2 {
		t.Errorf("rejected{source=big} = %v, want 2", got)
	}

	// A client that sends its whole oversized body before reading gets the 413, not a reset.
	huge := bytes.Repeat([]byte("["), 3<<20)
	status, _, _ = f.raw(t, fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(huge)), huge)
	if status != 413 {
		t.Errorf("3 MiB sent in full: %d", status)
	}

	// Events within the limit still go through the fast path.
	status, body, _ = f.raw(t, fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(goodEvent), goodEvent), nil)
	if status != 200 || !strings.Contains(body, `"status":"accepted"`) {
		t.Errorf("good event: %d %s", status, body)
	}
}

// batchListener is a listener with a 100 KiB in-flight budget and POST /batch (80 KiB
// limit, source "batch"), whose handler reads the body, then, for ?hold=1, signals entered
// and waits for release to be closed before answering 204.
func batchListener(t *testing.T) (f *fastListener, entered, release chan struct{}) {
	entered = make(chan struct{})
	release = make(chan struct{})
	hold := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if r.URL.Query().Get("hold") != "" {
			entered <- struct{}{}
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	})
	f = newFastListener(t, Options{MaxInFlightBody: 100 << 10}, func(s *Server) {
		s.HandleRoute("/batch", hold, Route{MaxBody: 80 << 10, LimitKey: "batch.max", Source: "batch"})
	})
	return f, entered, release
}

func TestInFlightBodyBudget(t *testing.T) {
	f, entered, release := batchListener(t)
	body := bytes.Repeat([]byte("b"), 70<<10)
	head := func(q string) string {
		return fmt.Sprintf("POST /batch%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", q, len(body))
	}
	held := make(chan int)
	go func() {
		status, _, _ := f.raw(t, head("?hold=1"), body)
		held <- status
	}()
	<-entered // 70 KiB of the 100 KiB budget are held

	status, msg, h := f.raw(t, head(""), body)
	if status != 503 || h.Get("Retry-After") == "" || !strings.Contains(msg, "maxinflightbodybytes") {
		t.Errorf("second 70 KiB body while the first is held: %d Retry-After %q %s", status, h.Get("Retry-After"), msg)
	}
	// Small bodies are not held back by large ones.
	if status, _, _ := f.raw(t, "POST /batch HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", bytes.Repeat([]byte("s"), 100)); status != 204 {
		t.Errorf("small body while the budget is spent: %d", status)
	}
	close(release)
	if status := <-held; status != 204 {
		t.Errorf("held request: %d", status)
	}
	if status, _, _ := f.raw(t, head(""), body); status != 204 {
		t.Errorf("after release: %d", status)
	}
	if used := f.srv.budget.used.Load(); used != 0 {
		t.Errorf("budget still holds %d bytes", used)
	}
}

// heapPeak samples the heap in use until stop is closed.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// postAll sends n concurrent bodies of size bytes (from one shared chunk, so the clients
// allocate nothing) and returns the answers' status codes (0: the connection closed first).
func (f *fastListener) postAll(t *testing.T, n int, path string, size int) []int {
	chunk := bytes.Repeat([]byte("["), 64<<10)
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", f.addr)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, size)
			for sent := 0; sent < size; sent += len(chunk) {
				if _, err := c.Write(chunk[:min(len(chunk), size-sent)]); err != nil {
					break
				}
			}
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				codes[i] = resp.StatusCode
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	return codes
}

func TestConcurrentOversizedBodiesStayOutOfMemory(t *testing.T) {
	f := newFastListener(t, Options{}, nil)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	codes := f.postAll(t, 40, "/", 12_000_000)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	for i, c := range codes {
		if c != 413 && c != 0 {
			t.Errorf("body %d: status %d, want 413 (or the connection closed)", i, c)
		}
	}
	// Buffered, the 40 bodies would allocate 480 MB; refused from their headers and drained,
	// they cost the copy buffers.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("the server allocated %d MB for 40 refused 12 MB bodies", alloc>>20)
	}
	if got := f.rejected("requests"); got != 40 {
		t.Errorf("rejected = %v, want 40", got)
	}
}

func TestConcurrentLargeBatchesBoundedByBudget(t *testing.T) {
	const budget, batch = 24 << 20, 12_000_000
	var maxUsed atomic.Int64
	var f *fastListener
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for used := f.srv.budget.used.Load(); used > maxUsed.Load(); {
			if maxUsed.CompareAndSwap(maxUsed.Load(), used) {
				break
			}
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})
	f = newFastListener(t, Options{MaxInFlightBody: budget}, func(s *Server) {
		s.HandleRoute("/k8s-audit", handler, Route{MaxBody: 12 << 20, LimitKey: "k8saudit.maxbatchsize", Source: "k8saudit"})
	})
	runtime.GC()
	stop := make(chan struct{})
	peak := heapPeak(stop)
	codes := f.postAll(t, 40, "/k8s-audit", batch)
	close(stop)
	ok, busy := 0, 0
	for i, c := range codes {
		switch c {
		case 200:
			ok++
		case 503:
			busy++
		default:
			t.Errorf("batch %d: status %d, want 200 or 503", i, c)
		}
	}
	if ok == 0 {
		t.Error("no batch was accepted")
	}
	if m := maxUsed.Load(); m > budget {
		t.Errorf("%d bytes of bodies held at once, budget %d", m, budget)
	}
	// Unbounded, 40 batches would hold 480 MB at once; the budget admits two at a time.
	// (Sampled, so a loose bound: the GC may lag behind freed batches.)
	if p := <-peak; p > 200<<20 {
		t.Errorf("heap peaked at %d MB", p>>20)
	}
	t.Logf("%d accepted, %d answered 503; bodies held at once at most %d MB", ok, busy, maxUsed.Load()>>20)
}

// The net/http side (ServeHTTP, and LimitBodies on the plain port and the audit listener)
// applies the same limits and budget as the fasthttp listener.
func TestNetHTTPSideAppliesLimitsAndBudget(t *testing.T) {
	f, entered, release := batchListener(t)
	hs := httptest.NewServer(f.srv)
	t.Cleanup(hs.Close)
	nf := &fastListener{srv: f.srv, addr: strings.TrimPrefix(hs.URL, "http://"), m: f.m}

	status, body, _ := nf.raw(t, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n", nil)
	if status != 413 || !strings.Contains(body, "larger than the 4096 bytes limit (maxbodysize)") {
		t.Errorf("announced 50 MB: %d %s", status, body)
	}
	status, body, _ = nf.raw(t, "POST /batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", chunked(bytes.Repeat([]byte("z"), 100<<10)))
	if status != 413 {
		t.Errorf("chunked 100 KiB to /batch: %d %s", status, body)
	}
	payload := bytes.Repeat([]byte("b"), 70<<10)
	head := func(q string) string {
		return fmt.Sprintf("POST /batch%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", q, len(payload))
	}
	held := make(chan int)
	go func() {
		status, _, _ := nf.raw(t, head("?hold=1"), payload)
		held <- status
	}()
	<-entered
	if status, msg, h := nf.raw(t, head(""), payload); status != 503 || h.Get("Retry-After") == "" {
		t.Errorf("second body while the first is held: %d %q %s", status, h.Get("Retry-After"), msg)
	}
	close(release)
	if status := <-held; status != 204 {
		t.Errorf("held request: %d", status)
	}
	if got := f.rejected("batch"); got != 1 {
		t.Errorf("rejected{source=batch} = %v, want 1 (the 503)", got)
	}
}
