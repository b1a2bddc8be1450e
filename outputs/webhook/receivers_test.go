package webhook

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

// receiver is one webhook receiver of the matrix: it appends the uuid of every event it gets
// to records, one per line, closes keep-alive connections idle for 300 ms, and can be
// restarted (killed mid-stream, then started again on the same port).
type receiver struct {
	name    string
	port    int
	records string
	start   func(t *testing.T)
	stop    func()
}

// TestReceiverMatrix delivers events with the webhook's default configuration to the
// receivers users run — Go net/http, Python http.server and Node's http module, each directly
// and behind nginx as a reverse proxy — while the receiver closes idle connections and is
// restarted mid-stream. Every event must arrive, intact; duplicates (an event the receiver
// recorded but whose answer was lost in the restart) are counted and reported.
func TestReceiverMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("needs nginx, python3 and node (installed by .ci/install-peers.sh)")
	}
	nginx := "/usr/sbin/nginx" // Debian's, often outside a user's PATH
	if _, err := os.Stat(nginx); err != nil {
		nginx = testpeers.Bin(t, "nginx")
	}
	python := testpeers.Bin(t, "python3")
	node := testpeers.Bin(t, "node")
	for _, kind := range []string{"go", "python", "node"} {
		for _, proxied := range []bool{false, true} {
			name := kind
			if proxied {
				name = "nginx-" + kind
			}
			t.Run(name, func(t *testing.T) {
				r := newReceiver(t, kind, python, node)
				r.start(t)
				t.Cleanup(r.stop)
				port := r.port
				if proxied {
					port = startNginx(t, nginx, r.port)
				}
				runMatrixCase(t, r, fmt.Sprintf("http://127.0.0.1:%d/hook", port), name)
			})
		}
	}
}

func newReceiver(t *testing.T, kind, python, node string) *receiver {
	t.Helper()
	r := &receiver{name: kind, port: testpeers.FreePort(t), records: filepath.Join(t.TempDir(), "records")}
	switch kind {
	case "go":
		var srv *http.Server
		var mu sync.Mutex
		r.start = func(t *testing.T) {
			f, err := os.OpenFile(r.records, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
			if err != nil {
				t.Fatal(err)
			}
			s := &http.Server{IdleTimeout: 300 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				body, _ := io.ReadAll(req.Body)
				var ev struct{ UUID string }
				if json.Unmarshal(body, &ev) != nil || ev.UUID == "" {
					ev.UUID = "CORRUPT"
				}
				mu.Lock()
				_, _ = f.WriteString(ev.UUID + "\n")
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte("{}"))
			})}
			go func() { _ = s.Serve(ln); f.Close() }()
			srv = s
		}
		r.stop = func() {
			if srv != nil {
				_ = srv.Close() // drops in-flight requests, as a crash would
			}
		}
	case "python", "node":
		argv := []string{python, filepath.Join(testdataDir(t), "receiver.py")}
		if kind == "node" {
			argv = []string{node, filepath.Join(testdataDir(t), "receiver.js")}
		}
		argv = append(argv, fmt.Sprint(r.port), r.records)
		var p *testpeers.Proc
		r.start = func(t *testing.T) {
			p = testpeers.Start(t, kind, argv, nil, func() bool { return testpeers.PortOpen(r.port) }, 20*time.Second)
		}
		r.stop = func() {
			if p != nil {
				p.Stop()
			}
		}
	}
	return r
}

func testdataDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// startNginx runs Debian's nginx, unprivileged configuration in a temporary prefix, as a
// reverse proxy to backend on a free port, closing client connections after 1 s idle or 50
// requests. It is stopped by its process id when the test ends.
func startNginx(t *testing.T, bin string, backend int) int {
	t.Helper()
	port := testpeers.FreePort(t)
	dir := t.TempDir()
	conf := fmt.Sprintf(`worker_processes 1;
error_log %[1]s/error.log warn;
pid %[1]s/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  keepalive_timeout 1s;
  keepalive_requests 50;
  server {
    listen 127.0.0.1:%[2]d;
    location / { proxy_pass http://127.0.0.1:%[3]d; }
  }
}
`, dir, port, backend)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	testpeers.Start(t, "nginx", []string{bin, "-p", dir, "-c", path, "-g", "daemon off;"}, nil,
		func() bool { return testpeers.PortOpen(port) }, 20*time.Second)
	return port
}

// runMatrixCase publishes events in three waves through the webhook output with its default
// configuration: the receiver restarts during the first, and the connections go idle past
// the receiver's idle timeout before the last.
func runMatrixCase(t *testing.T, r *receiver, url, name string) {
	c := defaults()
	c.Address = url
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p := defaultPolicy()
	w, err := New(c, outputs.Env{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	eng := deliverytest.Start(t, w, p)
	seq := 0
	publish := func(n int, pace time.Duration) {
		for range n {
			seq++
			ev := &event.Event{UUID: fmt.Sprintf("%s-%04d", name, seq), Output: "matrix", Priority: event.Critical,
				Rule: "matrix", Time: time.Now().UTC(), Source: "syscalls", OutputFields: map[string]any{"seq": seq}}
			deliverytest.Publish(t, eng, ev)
			time.Sleep(pace) // a steady stream, so the restart below falls in the middle of it
		}
	}
	const streamed = 400
	done := make(chan struct{})
	go func() {
		defer close(done)
		publish(streamed, 2*time.Millisecond)
	}()
	testpeers.Eventually(t, 30*time.Second, func() bool { return len(readRecords(t, r.records)) >= streamed/4 },
		"%s recorded fewer than %d events", r.name, streamed/4)
	r.stop()
	r.start(t)
	<-done
	testpeers.Eventually(t, 60*time.Second, func() bool { return len(readRecords(t, r.records)) >= streamed },
		"%s recorded fewer than %d events", r.name, streamed)
	// Let every keep-alive connection pass the receivers' idle timeout (300 ms; nginx 1 s), so
	// the last events go out on connections the receiver is closing.
	time.Sleep(1200 * time.Millisecond)
	publish(150, 0)
	if lost := eng.Stop(2 * time.Minute); lost > 0 {
		t.Errorf("%d events given up", lost)
	}
	seen := map[string]int{}
	for _, uid := range readRecords(t, r.records) {
		seen[uid]++
	}
	if seen["CORRUPT"] > 0 {
		t.Errorf("%d corrupt bodies received", seen["CORRUPT"])
	}
	missing, dups := 0, 0
	for i := 1; i <= seq; i++ {
		n := seen[fmt.Sprintf("%s-%04d", name, i)]
		if n == 0 {
			missing++
		}
		if n > 1 {
			dups += n - 1
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d events never reached the %s receiver", missing, seq, name)
	}
	t.Logf("%s: %d events delivered, %d duplicates (recorded before the restart cut their answer)", name, seq-missing, dups)
}

func readRecords(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// defaultPolicy is the delivery policy saker gives the webhook output when nothing is
// configured (its own default concurrency included).
func defaultPolicy() delivery.Policy {
	p := delivery.DefaultPolicy()
	for _, s := range outputs.All() {
		if s.Name == "webhook" && s.Concurrency > 0 {
			p.MaxConcurrentRequests = s.Concurrency
		}
	}
	return p
}
