package webhook

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
	"github.com/saker-dev/saker/outputs"
)

// TestStopWithSendsInFlightLosesNothing stops the engine (what SIGTERM does) while the
// webhook, with its default configuration, has requests in flight to a slow receiver (50 ms
// an answer) and to one that never answers: every accepted event ends delivered or in the
// dead-letter file, and Stop returns soon after its timeout.
func TestStopWithSendsInFlightLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(r *http.Request) bool // false: never answer
		n      int
	}{
		{"slow", func(*http.Request) bool { time.Sleep(50 * time.Millisecond); return true }, 2000},
		{"hung", func(r *http.Request) bool { <-r.Context().Done(); return false }, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			delivered := map[string]bool{}
			arrived := make(chan struct{}, tc.n)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				arrived <- struct{}{}
				if !tc.answer(r) {
					return
				}
				var ev struct{ UUID string }
				_ = json.Unmarshal(body, &ev)
				mu.Lock()
				delivered[ev.UUID] = true // answered 200 below
				mu.Unlock()
			}))
			defer srv.Close()
			deadPath := filepath.Join(t.TempDir(), "dead.jsonl")
			dead, err := delivery.OpenDeadLetter(deadPath)
			if err != nil {
				t.Fatal(err)
			}
			c := defaults()
			c.Address = srv.URL + "/hook"
			p := defaultPolicy()
			w, err := New(c, outputs.Env{Policy: p})
			if err != nil {
				t.Fatal(err)
			}
			eng := delivery.NewEngine(delivery.NewMemoryBus(), metrics.New(0), dead, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err := eng.Add(w, p); err != nil {
				t.Fatal(err)
			}
			eng.Start()
			accepted := map[string]bool{}
			for i := range tc.n {
				ev := &event.Event{UUID: fmt.Sprintf("%s-%d", tc.name, i), Output: "x", Priority: event.Critical, Rule: "r",
					Time: time.Now().UTC(), Source: "syscalls"}
				if _, err := eng.Publish(context.Background(), ev, []string{"webhook"}); err != nil {
					t.Fatal(err)
				}
				accepted[ev.UUID] = true
			}
			<-arrived // sends are in flight
			const timeout = 300 * time.Millisecond
			start := time.Now()
			eng.Stop(timeout)
			if took := time.Since(start); took > timeout+5*time.Second {
				t.Errorf("Stop took %s", took)
			}
			deadUUIDs := readDeadUUIDs(t, deadPath)
			mu.Lock()
			defer mu.Unlock()
			missing := 0
			for uid := range accepted {
				if !delivered[uid] && !deadUUIDs[uid] {
					missing++
				}
			}
			if missing > 0 {
				t.Errorf("%d of %d accepted events neither delivered nor dead-lettered", missing, len(accepted))
			}
			t.Logf("%s: %d delivered, %d dead-lettered of %d", tc.name, len(delivered), len(deadUUIDs), len(accepted))
		})
	}
}

func readDeadUUIDs(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Reason string
			Event  struct{ UUID string }
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Reason != "shutdown" {
			t.Errorf("dead letter with reason %q", rec.Reason)
		}
		out[rec.Event.UUID] = true
	}
	return out
}
