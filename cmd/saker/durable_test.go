package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/testpeers"
)

// With the spool, events accepted while the output fails survive kill -9: the restarted
// process on the same spool delivers every one of them.
func TestSpoolSurvivesKill9(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "spool")
	var failing atomic.Bool
	failing.Store(true)
	out := newSink(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	env := []string{"WEBHOOK_ADDRESS=" + out.srv.URL + "/", "SPOOL_PATH=" + spool, "SPOOL_ACKWAIT=1s"}
	d := start(t, env...)
	accepted := map[string]bool{}
	for i := 0; i < 20; i++ {
		code, body := d.post(t, "/", falcoEvent)
		if code != http.StatusOK {
			t.Fatalf("POST / with the spool = %d %s", code, body)
		}
		var a struct{ UUID string }
		if err := json.Unmarshal([]byte(body), &a); err != nil || a.UUID == "" {
			t.Fatalf("answer %s: %v", body, err)
		}
		accepted[a.UUID] = true
	}
	out.next(t) // the output is being tried (and fails)
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.done
	for drained := false; !drained; { // forget the failed attempts
		select {
		case <-out.hits:
		default:
			drained = true
		}
	}

	failing.Store(false)
	start(t, env...)
	until := time.Now().Add(deadline)
	for len(accepted) > 0 {
		var h hit
		select {
		case h = <-out.hits:
		case <-time.After(time.Until(until)):
			t.Fatalf("after kill -9 and a restart on the same spool, %d accepted events never delivered", len(accepted))
		}
		var ev struct{ UUID string }
		if err := json.Unmarshal(h.body, &ev); err == nil {
			delete(accepted, ev.UUID)
		}
	}
}

// A spool directory that cannot be used stops start-up with its path and the reason.
func TestSpoolUnusableIsReported(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SPOOL_PATH=" + file + "/spool", "LISTENADDRESS=127.0.0.1", fmt.Sprintf("LISTENPORT=%d", testpeers.FreePort(t))}
	if code, _, stderr := run(t, env); code == 0 ||
		!strings.Contains(stderr, file) {
		t.Fatalf("exit %d with an unusable spool; stderr:\n%s", code, stderr)
	}
}

// The two durable modes exclude each other, and their keys are checked like any other.
func TestConfigCheckBusKeys(t *testing.T) {
	code, _, stderr := run(t, []string{"SPOOL_PATH=/tmp/x", "BUS_JETSTREAM_URL=nats://127.0.0.1:4222"}, "config", "check")
	if code != 1 || !strings.Contains(stderr, "spool.path and bus.jetstream.url are both set") {
		t.Errorf("both modes: exit %d: %s", code, stderr)
	}
	code, _, stderr = run(t, []string{"SPOOL_PATH=/tmp/x", "SPOOL_SYNC=sometimes"}, "config", "check")
	if code != 1 || !strings.Contains(stderr, `spool.sync must be always or a positive duration such as 2m, got "sometimes"`) {
		t.Errorf("spool.sync=sometimes: exit %d: %s", code, stderr)
	}
}
