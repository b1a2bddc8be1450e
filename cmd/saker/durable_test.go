package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
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

// A spool that cannot be opened does not stop saker (a service manager would restart it in a
// loop) and is not replaced by an empty one: saker runs, answers 503 with Retry-After to
// every event, and /healthz and the log give the path and the reason. Its files are left as
// they were.
func TestUnusableSpoolIsReportedWithoutExiting(t *testing.T) {
	cases := map[string]func(t *testing.T) (path, reason string){
		"path under a file": func(t *testing.T) (string, string) {
			file := filepath.Join(t.TempDir(), "not-a-dir")
			if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return file + "/spool", "not a directory"
		},
		"truncated stream metadata": func(t *testing.T) (string, string) {
			spool := filepath.Join(t.TempDir(), "spool")
			out := newSink(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
			d := start(t, "WEBHOOK_ADDRESS="+out.srv.URL+"/", "SPOOL_PATH="+spool)
			d.mustPost(t, falcoEvent)
			d.sigterm(t)
			meta := filepath.Join(spool, "jetstream", "$G", "streams", "saker", "meta.inf")
			if err := os.WriteFile(meta, []byte(`{"name":"sak`), 0o600); err != nil {
				t.Fatal(err)
			}
			return spool, "does not start empty"
		},
		"disk full at start": diskFullSpool,
	}
	for name, setUp := range cases {
		t.Run(name, func(t *testing.T) {
			path, reason := setUp(t)
			var before []string
			_ = filepath.Walk(path, func(p string, fi os.FileInfo, _ error) error {
				if fi != nil && !fi.IsDir() {
					before = append(before, p)
				}
				return nil
			})
			out := newSink(t, nil)
			d := start(t, "WEBHOOK_ADDRESS="+out.srv.URL+"/", "SPOOL_PATH="+path)
			resp, err := http.Post(d.url+"/", "application/json", strings.NewReader(falcoEvent))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Errorf("POST / with an unusable spool = %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			hr, err := http.Get(d.url + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(hr.Body)
			hr.Body.Close()
			code, body := hr.StatusCode, string(raw)
			var h struct {
				Bus struct {
					Mode      string
					Connected bool
					Error     string
				}
			}
			if err := json.Unmarshal([]byte(body), &h); err != nil {
				t.Fatalf("/healthz %d: %s", code, body)
			}
			if h.Bus.Mode != "embedded" || h.Bus.Connected || !strings.Contains(h.Bus.Error, path) || !strings.Contains(h.Bus.Error, reason) {
				t.Errorf("/healthz bus = %+v; want embedded, not connected, an error naming %s and saying %q", h.Bus, path, reason)
			}
			if log := d.stderr.String(); !strings.Contains(log, "the spool cannot be opened") || !strings.Contains(log, path) {
				t.Errorf("the log does not report the spool:\n%s", log)
			}
			if code := d.sigterm(t); code != 0 {
				t.Errorf("exit code %d after SIGTERM with an unusable spool", code)
			}
			var after []string
			_ = filepath.Walk(path, func(p string, fi os.FileInfo, _ error) error {
				if fi != nil && !fi.IsDir() {
					after = append(after, p)
				}
				return nil
			})
			if strings.Join(before, "\n") != strings.Join(after, "\n") {
				t.Errorf("saker changed the spool it could not open:\nbefore %v\nafter %v", before, after)
			}
		})
	}
}

// diskFullSpool is a spool directory on a tmpfs of 1 MiB filled to the last byte: a disk
// full at start. Mounting needs root (CAP_SYS_ADMIN); elsewhere the case is skipped, since a
// directory made read-only does not stop root and a loop device needs root as well.
func diskFullSpool(t *testing.T) (string, string) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v: %s): the disk-full case needs root", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	spool := filepath.Join(mnt, "spool")
	if err := os.Mkdir(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break // ENOSPC: the disk is full
		}
	}
	f.Close()
	return spool, "insufficient storage"
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

// An output removed from the configuration: at the next start the events the spool still
// holds for it are dead-lettered (reason output_removed) and leave the spool.
func TestSpoolRemovedOutputIsDeadLettered(t *testing.T) {
	dir := t.TempDir()
	spool, dead := filepath.Join(dir, "spool"), filepath.Join(dir, "dead.jsonl")
	out := newSink(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	d := start(t, "WEBHOOK_ADDRESS="+out.srv.URL+"/", "SPOOL_PATH="+spool)
	for i := 0; i < 3; i++ {
		d.mustPost(t, falcoEvent)
	}
	if code := d.sigterm(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	d = start(t, "FILE_PATH="+filepath.Join(dir, "events.jsonl"), "SPOOL_PATH="+spool, "DEADLETTER_PATH="+dead)
	recs := waitLines(t, dead, 3)
	for _, r := range recs {
		if r["output"] != "webhook" || r["reason"] != "output_removed" {
			t.Errorf("dead-letter record %v, want webhook, output_removed", r)
		}
	}
	// The dead letters are written before the removal is logged: wait for the line.
	testpeers.Eventually(t, 10*time.Second, func() bool { return strings.Contains(d.stderr.String(), "output no longer configured") },
		"the removal of the webhook output is not logged")
	until := time.Now().Add(deadline)
	for {
		resp, err := http.Get(d.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			Bus struct {
				StoredEvents int `json:"stored_events"`
			}
		}
		_ = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if h.Bus.StoredEvents == 0 {
			break
		}
		if time.Now().After(until) {
			t.Fatalf("the spool still holds %d events of the removed output", h.Bus.StoredEvents)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
