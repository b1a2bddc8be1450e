// Package deliverytest runs an output through the real delivery engine in tests: queue,
// workers, retries and batching as in production, with the in-memory bus.
package deliverytest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
)

// Start returns a started engine delivering to out with policy p; it logs warnings to
// stderr. The caller stops it (and may assert that Stop lost nothing).
func Start(t testing.TB, out delivery.Output, p delivery.Policy) *delivery.Engine {
	t.Helper()
	eng := delivery.NewEngine(delivery.NewMemoryBus(), metrics.New(0), nil,
		slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := eng.Add(out, p); err != nil {
		t.Fatal(err)
	}
	eng.Start()
	return eng
}

// Policy is the default delivery policy with retries fast enough for tests (20 ms, at most
// 200 ms apart, 2 s per attempt) and the given minimumpriority.
func Policy(minimumPriority string) delivery.Policy {
	p := delivery.DefaultPolicy()
	p.MinimumPriority = minimumPriority
	p.Timeout = 2 * time.Second
	p.Retry.Initial = 20 * time.Millisecond
	p.Retry.Max = 200 * time.Millisecond
	return p
}

// Publish routes ev as the pipeline does (minimumpriority) and queues it.
func Publish(t testing.TB, eng *delivery.Engine, ev *event.Event) {
	t.Helper()
	if _, err := eng.Publish(context.Background(), ev, eng.Route(ev, "")); err != nil {
		t.Fatal(err)
	}
}

// WaitFailing waits until the engine's first output reports a failed attempt, proving the
// peer was really down when the events were published.
func WaitFailing(t testing.TB, eng *delivery.Engine) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for eng.Health()[0].State != "failing" {
		if time.Now().After(deadline) {
			t.Fatal("output never failed while the peer was down")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BodyTexter is an endpoint whose requests carry the event encoded (Kafka REST's base64
// values): BodyText returns a request body as text in which the event's output can be
// found.
type BodyTexter interface {
	BodyText(body []byte) string
}

// accepted wraps an endpoint, keeping the bodies it answered with a 2xx status.
type accepted struct {
	next   http.Handler
	mu     sync.Mutex
	bodies []string
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (a *accepted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	sw := &statusWriter{ResponseWriter: w}
	a.next.ServeHTTP(sw, r)
	if sw.status == 0 || sw.status/100 == 2 {
		text := string(body)
		if d, ok := a.next.(BodyTexter); ok {
			text = d.BodyText(body)
		}
		a.mu.Lock()
		a.bodies = append(a.bodies, text)
		a.mu.Unlock()
	}
}

func (a *accepted) snapshot() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.bodies...)
}

// DownThenUp holds an HTTP output to "nothing lost while the receiver is down": it
// publishes 10 events (outputs "saker test event 00" to "... 09") while nothing listens
// where newOutput(baseURL) sends, waits until the output has failed, then starts endpoint
// there (a strict stand-in for the real service, mounted at /) and checks that each event
// was accepted exactly once, through the engine's retries.
func DownThenUp(t *testing.T, newOutput func(baseURL string) delivery.Output, endpoint http.Handler) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // down: the port refuses connections until the endpoint starts on it
	eng := Start(t, newOutput("http://"+addr), Policy(""))
	const n = 10
	for i := range n {
		Publish(t, eng, &event.Event{Rule: fmt.Sprintf("rule %02d", i), Priority: event.Notice,
			Output: fmt.Sprintf("saker test event %02d", i), Time: time.Now(), Source: "syscalls"})
	}
	WaitFailing(t, eng)
	rec := &accepted{next: endpoint}
	if l, err = net.Listen("tcp", addr); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rec}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(rec.snapshot()) >= n },
		"the endpoint did not accept all %d events", n)
	eng.Stop(200 * time.Millisecond)
	all := strings.Join(rec.snapshot(), "\n")
	for i := range n {
		if c := strings.Count(all, fmt.Sprintf("saker test event %02d", i)); c != 1 {
			t.Errorf("event %02d accepted %d times", i, c)
		}
	}
}

// OnlyCritical holds an output to its minimumpriority: with minimumpriority critical, of
// the 8 recorded events only the Critical one ("K8s Secret Access By Non Admin") may be
// accepted by endpoint.
func OnlyCritical(t *testing.T, newOutput func(baseURL string) delivery.Output, endpoint http.Handler) {
	t.Helper()
	rec := &accepted{next: endpoint}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	eng := Start(t, newOutput(srv.URL), Policy("critical"))
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		Publish(t, eng, evs[name])
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(rec.snapshot()) >= 1 }, "the Critical event did not arrive")
	eng.Stop(time.Second)
	if got := rec.snapshot(); len(got) != 1 || !strings.Contains(strings.ReplaceAll(got[0], "_", " "), "K8s Secret Access By Non Admin") {
		t.Fatalf("want only the Critical event, got %q", got)
	}
}
