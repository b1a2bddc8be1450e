package httpout

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
)

// TestPipelinedResponsesMatchRequests sends many concurrent pipelined requests, each
// answered with a status derived from its body, and checks every caller gets its own
// answer, over no more than the pipelining connections.
func TestPipelinedResponsesMatchRequests(t *testing.T) {
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
	c := newClient(t, Options{CheckCert: true, MaxConns: 64, Pipeline: true})
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
	if len(conns) > pipelineConns {
		t.Errorf("%d connections used, want at most %d", len(conns), pipelineConns)
	}
}
