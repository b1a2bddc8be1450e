package httpout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
)

// TestConcurrentResponsesMatchRequests sends many concurrent requests, each answered with a
// status derived from its body, and checks every caller gets its own answer, over no more
// connections than the pool allows.
func TestConcurrentResponsesMatchRequests(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		n, _ := strconv.Atoi(string(b))
		if n%5 == 0 {
			w.WriteHeader(http.StatusBadRequest)
		}
		fmt.Fprintf(w, "echo %d", n)
	}))
	defer srv.Close()
	c := newClient(t, Options{CheckCert: true, MaxConns: 16})
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := c.Do(ctx, Request{URL: srv.URL + "/hook", Body: []byte(strconv.Itoa(i))})
			switch {
			case i%5 == 0 && (err == nil || !delivery.IsPermanent(err)):
				errs <- fmt.Errorf("request %d: want a permanent 400, got %v", i, err)
			case i%5 != 0 && err != nil:
				errs <- fmt.Errorf("request %d: %v", i, err)
			case i%5 != 0 && string(resp.Body) != fmt.Sprintf("echo %d", i):
				errs <- fmt.Errorf("request %d got the answer %q", i, resp.Body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(conns) > 2*16 {
		t.Errorf("%d connections used, want at most %d", len(conns), 2*16)
	}
}

// TestCancelAbortsRequestInFlight cancels the context of a request the server never answers:
// Do must return at once with context.Canceled, and the server must see the connection go.
func TestCancelAbortsRequestInFlight(t *testing.T) {
	arrived := make(chan struct{})
	gone := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done() // the client went away
		close(gone)
	}))
	defer s.Close()
	c := newClient(t, Options{CheckCert: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		<-arrived
		cancel()
	}()
	start := time.Now()
	_, err := c.Do(ctx, Request{URL: s.URL})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Do returned %s after the cancellation", d)
	}
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Error("the connection of the cancelled request stayed open")
	}
}

// TestHungConnectionIsDropped: a receiver hangs on the first requests, then answers again.
// The requests whose answer is overdue fail with their deadline, and the next ones succeed
// on fresh connections instead of queueing behind the hung ones.
func TestHungConnectionIsDropped(t *testing.T) {
	var hang atomic.Bool
	hang.Store(true)
	release := make(chan struct{})
	defer close(release)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select { // never answers while hanging (the hung requests stay hung)
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer s.Close()
	c := newClient(t, Options{CheckCert: true, MaxConns: 2})
	var wg sync.WaitGroup
	for range 4 { // more than the pool's connections
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if _, err := c.Do(ctx, Request{URL: s.URL}); !errors.Is(err, context.DeadlineExceeded) || delivery.IsPermanent(err) {
				t.Errorf("hung request: want a transient deadline error, got %v", err)
			}
		}()
	}
	wg.Wait()
	hang.Store(false)
	for i := range 8 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := c.Do(ctx, Request{URL: s.URL})
		cancel()
		if err != nil || string(resp.Body) != "ok" {
			t.Fatalf("request %d after the hang: %v", i, err)
		}
	}
}

// TestConnectionRefusedIsReportedAtOnce: a closed port fails with "connection refused", not
// after the whole timeout.
func TestConnectionRefusedIsReportedAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClient(t, Options{CheckCert: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.Do(ctx, Request{URL: "http://" + addr + "/hook"})
	if err == nil || !strings.Contains(err.Error(), "connection refused") || delivery.IsPermanent(err) {
		t.Errorf("want a transient connection refused, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestIdleConnectionClosedByServerIsRetried: the receiver closes keep-alive connections as soon
// as they go idle; the next request, written on such a connection, is sent again on a new one
// rather than failing.
func TestIdleConnectionClosedByServerIsRetried(t *testing.T) {
	var requests atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = w.Write([]byte("ok"))
	}))
	closed := make(chan struct{}, 16)
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateIdle:
			c.Close() // without "Connection: close": the client learns it on its next write
		case http.StateClosed:
			closed <- struct{}{}
		}
	}
	s.Start()
	defer s.Close()
	c := newClient(t, Options{CheckCert: true, MaxConns: 1})
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Do(ctx, Request{URL: s.URL, Body: []byte("x")})
		cancel()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		<-closed // the server has closed the connection the client keeps as idle
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("server handled %d requests, want 3", n)
	}
}
