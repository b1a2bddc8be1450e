// Package testpeers starts the real servers the integration tests talk to (Alertmanager,
// VictoriaLogs, mailpit, fauxqs, aws-lambda-rie, ...) as child processes on free ports, and
// stops them by PID when the test ends. .ci/install-peers.sh installs them into Dir().
//
// A test that needs such a server skips under go test -short (make test-short runs on a
// machine with none installed) and says which one; otherwise a missing server fails it.
package testpeers

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Dir is where .ci/install-peers.sh puts the peer binaries: $SAKER_PEERS, default
// /tmp/saker-peers.
func Dir() string {
	if d := os.Getenv("SAKER_PEERS"); d != "" {
		return d
	}
	return "/tmp/saker-peers"
}

// Need declares that the test talks to the real server name: under go test -short the test
// is skipped, naming the server; otherwise Need returns and the test uses the server, failing
// when it is not there. Bin calls it; tests reaching a peer another way call it first.
func Need(t testing.TB, name string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs the real server %s (a test peer: .ci/install-peers.sh); skipped under -short", name)
	}
}

// Bin finds a peer executable in Dir() or on PATH, failing the test with the install hint
// when it is missing (a missing peer must not turn into a passing test). Under -short it
// skips the test instead (see Need).
func Bin(t testing.TB, name string) string {
	t.Helper()
	Need(t, name)
	p := filepath.Join(Dir(), name)
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	// Debian installs daemons (nginx, rsyslogd) in /usr/sbin, often outside a user's PATH.
	if p := filepath.Join("/usr/sbin", name); isExecutable(p) {
		return p
	}
	t.Fatalf("test peer %q not found in %s or PATH: run .ci/install-peers.sh", name, Dir())
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Proc is a running peer.
type Proc struct {
	Name string
	Dir  string // its private working directory
	cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{}
}

// Start runs argv in a new process group in a temporary directory and waits until ready
// returns true (polling every 50ms, up to timeout). The process is stopped when t ends.
func Start(t testing.TB, name string, argv []string, env []string, ready func() bool, timeout time.Duration) *Proc {
	t.Helper()
	p := &Proc{Name: name, Dir: t.TempDir(), out: &SyncBuffer{Max: 1 << 20}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = p.Dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Stop)
	deadline := time.Now().Add(timeout)
	for !ready() {
		select {
		case <-p.done:
			t.Fatalf("%s exited during start-up:\n%s", name, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			p.Stop()
			t.Fatalf("%s not ready after %s:\n%s", name, timeout, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// Stop terminates the process group (SIGTERM, then SIGKILL after 5s). Safe to call twice.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Kill is kill -9 of the process group; it returns once the process exited. Safe to call
// twice.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Pid is the process's id (for /proc/PID readings).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output is what the process printed so far, for failure messages.
func (p *Proc) Output() string { return p.out.String() }

// PortOpen reports whether something accepts TCP connections on 127.0.0.1:port.
func PortOpen(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// HTTPOK reports whether GET url answers 200.
func HTTPOK(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Eventually polls cond every 20ms until it holds or timeout passes, then fails with msg.
// It is for reading back from a peer that offers no notification; never for ordering.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, fmt.Sprintf(msg, args...))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SyncBuffer collects a process's output for a test to read while the process writes it.
type SyncBuffer struct {
	// Max, when positive, is the size past which writes are discarded (a chatty server
	// must not grow the test's memory without bound).
	Max int
	mu  sync.Mutex
	b   bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Max > 0 && s.b.Len() > s.Max {
		return len(p), nil
	}
	return s.b.Write(p)
}

// String is what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// RunWithBinary is a TestMain body for tests that run a binary of this module: it builds
// pkg (a package path relative to the test's directory) with the go build arguments args
// into a temporary directory, sets *bin to it, runs the tests and exits with their code.
// A build failure exits 1 with the compiler's output. It builds with -pgo=off: cmd/saker's
// default.pgo changes no behaviour, and compiling every dependency with it would add
// minutes to each test run.
func RunWithBinary(m *testing.M, bin *string, pkg string, args ...string) {
	dir, err := os.MkdirTemp("", "saker-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin = filepath.Join(dir, filepath.Base(filepath.Clean(pkg)))
	if pkg == "." {
		*bin = filepath.Join(dir, "saker")
	}
	build := exec.Command("go", append(append([]string{"build", "-pgo=off"}, args...), "-o", *bin, pkg)...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building %s: %v\n", pkg, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
