package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/testpeers"
)

// sakerBin is the binary under test, built once by TestMain.
var sakerBin string

const testVersion = "v0.0.0-itest"

func TestMain(m *testing.M) {
	testpeers.RunWithBinary(m, &sakerBin, ".", "-ldflags", "-X main.version="+testVersion)
}

// deadline bounds every wait on the daemon.
const deadline = 15 * time.Second

const falcoEvent = `{"output":"16:31:56.746609046: Error File below a known binary directory opened for writing (user=root command=touch /bin/hack file=/bin/hack)","hostname":"localhost","priority":"Error","rule":"Write below binary dir","time":"2019-05-17T15:31:56.746609046Z","output_fields":{"evt.time":1507591916746609046,"fd.name":"/bin/hack","proc.cmdline":"touch /bin/hack","user.name":"root"}}`

// daemon is a running saker process.
type daemon struct {
	cmd    *exec.Cmd
	url    string
	stderr *testpeers.SyncBuffer
	done   chan struct{}
	err    error
}

// baseEnv is a clean environment: only what the test sets configures saker.
func baseEnv(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, extra...)
}

// start runs saker on a free port of 127.0.0.1 with env (falcosidekick variables) and fast
// retries, and waits until /ping answers.
func start(t *testing.T, env ...string) *daemon {
	t.Helper()
	port := testpeers.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	d := startWithProbe(t, url+"/ping", append([]string{"LISTENADDRESS=127.0.0.1", fmt.Sprintf("LISTENPORT=%d", port),
		"RETRY_INITIAL=20ms", "RETRY_MAX=100ms"}, env...)...)
	d.url = url
	return d
}

// waitLogged waits (10s at most) until saker's log holds every one of texts: a line logged
// before an answer reaches the test through a pipe, maybe after the answer. On failure the
// test's clean-up prints the log.
func (d *daemon) waitLogged(t *testing.T, texts ...string) {
	t.Helper()
	testpeers.Eventually(t, 10*time.Second, func() bool {
		for _, text := range texts {
			if !strings.Contains(d.stderr.String(), text) {
				return false
			}
		}
		return true
	}, "saker's log lacks one of %q", texts)
}

// startWithProbe runs saker with env (stdout output off) and waits until GET probe answers 200.
func startWithProbe(t *testing.T, probe string, env ...string) *daemon {
	t.Helper()
	return startWithArgs(t, probe, nil, env...)
}

// startWithArgs is startWithProbe with command-line arguments (-c FILE).
func startWithArgs(t *testing.T, probe string, args []string, env ...string) *daemon {
	t.Helper()
	d := &daemon{stderr: &testpeers.SyncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(sakerBin, args...)
	d.cmd.Env = baseEnv(append([]string{"STDOUT_ENABLED=false"}, env...)...)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("saker stderr:\n%s", d.stderr.String())
		}
	})
	until := time.Now().Add(deadline)
	for {
		if resp, err := http.Get(probe); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
		select {
		case <-d.done:
			t.Fatalf("saker exited at start-up: %v\n%s", d.err, d.stderr.String())
		default:
		}
		if time.Now().After(until) {
			t.Fatalf("%s not answering after %s\n%s", probe, deadline, d.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(d.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (d *daemon) mustPost(t *testing.T, body string) {
	t.Helper()
	if code, resp := d.post(t, "/", body); code != 200 {
		t.Fatalf("POST / = %d %s", code, resp)
	}
}

// hit is one request a sink received.
type hit struct {
	at     time.Time
	body   []byte
	header http.Header
}

// sink is a webhook endpoint answering with the scripted statuses, then 200.
type sink struct {
	srv  *httptest.Server
	hits chan hit
}

func newSink(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *sink {
	t.Helper()
	s := &sink{hits: make(chan hit, 1000)}
	var mu sync.Mutex
	n := 0
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		s.hits <- hit{time.Now(), b, r.Header.Clone()}
		if answer != nil {
			answer(i, w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) next(t *testing.T) hit {
	t.Helper()
	select {
	case h := <-s.hits:
		return h
	case <-time.After(deadline):
		t.Fatal("sink received nothing")
		return hit{}
	}
}

func (s *sink) none(t *testing.T) {
	t.Helper()
	select {
	case h := <-s.hits:
		t.Fatalf("unexpected request: %s", h.body)
	default:
	}
}

// sigterm stops the daemon and returns its exit code.
func (d *daemon) sigterm(t *testing.T) int {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(deadline):
		t.Fatalf("saker still running %s after SIGTERM", deadline)
	}
	return d.cmd.ProcessState.ExitCode()
}

// waitLines polls a file the daemon writes until it holds n lines.
func waitLines(t *testing.T, path string, n int) []map[string]any {
	t.Helper()
	until := time.Now().Add(deadline)
	for {
		var lines []map[string]any
		if b, err := os.ReadFile(path); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil {
					lines = append(lines, m)
				}
			}
		}
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(until) {
			t.Fatalf("%s has %d lines, want %d", path, len(lines), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeliveryWithCustomFields(t *testing.T) {
	s := newSink(t, nil)
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL+"/falco", "WEBHOOK_CUSTOMHEADERS=X-Token:abc,X-Team:sec",
		"CUSTOMFIELDS=env:%SAKER_ITEST_ENV,team:blue", "SAKER_ITEST_ENV=production", "CUSTOMTAGS=saker,itest")
	d.mustPost(t, falcoEvent)
	h := s.next(t)
	if h.header.Get("X-Token") != "abc" || h.header.Get("X-Team") != "sec" {
		t.Errorf("headers %v", h.header)
	}
	var ev struct {
		UUID         string          `json:"uuid"`
		Rule         string          `json:"rule"`
		Source       string          `json:"source"`
		Tags         []string        `json:"tags"`
		OutputFields json.RawMessage `json:"output_fields"`
	}
	if err := json.Unmarshal(h.body, &ev); err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	_ = json.Unmarshal(ev.OutputFields, &fields)
	if fields["env"] != "production" || fields["team"] != "blue" || ev.Rule != "Write below binary dir" || ev.UUID == "" ||
		ev.Source != "syscalls" || strings.Join(ev.Tags, ",") != "itest,saker" {
		t.Errorf("delivered %s", h.body)
	}
	if !bytes.Contains(h.body, []byte(`"evt.time":1507591916746609046`)) {
		t.Errorf("evt.time not preserved: %s", h.body)
	}
	s.none(t)
}

func TestRetryAfterTwo500s(t *testing.T) {
	s := newSink(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(500)
		}
	})
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL)
	d.mustPost(t, falcoEvent)
	first := s.next(t)
	for i := 0; i < 2; i++ {
		if h := s.next(t); !bytes.Equal(h.body, first.body) {
			t.Errorf("retry %d sent another body", i+1)
		}
	}
	if code := d.sigterm(t); code != 0 {
		t.Errorf("exit %d", code)
	}
	s.none(t)
}

func TestRetryAfterHonoured(t *testing.T) {
	s := newSink(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
		}
	})
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL)
	d.mustPost(t, falcoEvent)
	a := s.next(t)
	b := s.next(t)
	if gap := b.at.Sub(a.at); gap < time.Second {
		t.Errorf("retried after %s despite Retry-After: 1", gap)
	}
}

func TestPermanent400NotRetried(t *testing.T) {
	s := newSink(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(400) })
	dead := filepath.Join(t.TempDir(), "dead.jsonl")
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL, "WEBHOOK_RETRY_MAXATTEMPTS=3", "DEADLETTER_PATH="+dead)
	d.mustPost(t, falcoEvent)
	s.next(t)
	recs := waitLines(t, dead, 1)
	if recs[0]["reason"] != "permanent" || recs[0]["output"] != "webhook" || recs[0]["attempts"] != 1.0 ||
		!strings.Contains(fmt.Sprint(recs[0]["error"]), "status 400") {
		t.Errorf("dead letter %v", recs[0])
	}
	if code := d.sigterm(t); code != 0 {
		t.Errorf("exit %d", code)
	}
	s.none(t)
}

func TestHungWebhookIsolatedFromFile(t *testing.T) {
	release := make(chan struct{})
	s := newSink(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL, "WEBHOOK_TIMEOUT=1m", "FILE_PATH="+path)
	const n = 20
	for i := 0; i < n; i++ {
		d.mustPost(t, falcoEvent)
	}
	s.next(t) // the webhook is hung on its first event
	lines := waitLines(t, path, n)
	if lines[0]["rule"] != "Write below binary dir" {
		t.Errorf("file line %v", lines[0])
	}
	resp, err := http.Get(d.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Outputs []struct {
			Name      string `json:"name"`
			InFlight  int    `json:"in_flight"`
			Delivered int    `json:"delivered"`
		}
	}
	_ = json.NewDecoder(resp.Body).Decode(&h)
	for _, o := range h.Outputs {
		if o.Name == "file" && o.Delivered != n || o.Name == "webhook" && (o.InFlight == 0 || o.Delivered != 0) {
			t.Errorf("healthz %+v", h.Outputs)
		}
	}
}

func TestBadInputs(t *testing.T) {
	s := newSink(t, nil)
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL, "MAXBODYSIZE=2000")
	resp, err := http.Get(d.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET / = %d", resp.StatusCode)
	}
	for body, want := range map[string]string{
		`{"priority":"bogus","rule":"r","time":"2024-01-01T00:00:00Z"}`: `priority \"bogus\" is not one of`,
		`{"priority":"info","time":"2024-01-01T00:00:00Z"}`:             `rule`,
		`{"priority":"info","rule":"r"}`:                                `time`,
		`not json`:                                                      `offset`,
	} {
		code, resp := d.post(t, "/", body)
		if code != 400 || !strings.Contains(resp, want) {
			t.Errorf("%s: %d %s", body, code, resp)
		}
	}
	if code, resp := d.post(t, "/", `{"rule":"`+strings.Repeat("a", 3000)+`"}`); code != 413 {
		t.Errorf("oversized: %d %s", code, resp)
	}
	if code, _ := d.post(t, "/test?output=slack", ""); code != 404 {
		t.Errorf("/test for a disabled output: %d", code)
	}
	if code, resp := d.post(t, "/test?output=webhook", ""); code != 200 {
		t.Errorf("/test: %d %s", code, resp)
	}
	if h := s.next(t); !bytes.Contains(h.body, []byte(`"rule":"Test rule"`)) {
		t.Errorf("test event %s", h.body)
	}
	s.none(t)
}

func TestSIGTERMDrains(t *testing.T) {
	s := newSink(t, func(_ int, _ http.ResponseWriter, _ *http.Request) { time.Sleep(50 * time.Millisecond) })
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL, "WEBHOOK_MAXCONCURRENTREQUESTS=1", "SHUTDOWNTIMEOUT=20s")
	const n = 10
	for i := 0; i < n; i++ {
		d.mustPost(t, falcoEvent)
	}
	signalled := time.Now()
	if code := d.sigterm(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	// Draining 10 events at 50ms each takes about half a second, not the 20s allowed.
	if took := time.Since(signalled); took > 10*time.Second {
		t.Errorf("exit %s after SIGTERM: saker waited for shutdowntimeout instead of leaving once drained", took)
	}
	if got := len(s.hits); got != n {
		t.Errorf("sink received %d of %d queued events before saker exited", got, n)
	}
	if !strings.Contains(d.stderr.String(), "saker stopped") {
		t.Errorf("no clean stop logged:\n%s", d.stderr.String())
	}
}

// run runs the binary to completion.
func run(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(sakerBin, args...)
	cmd.Env = baseEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func TestConfigCheckListsEveryProblem(t *testing.T) {
	code, _, stderr := run(t, []string{"LISTENPORT=http", "WEBHOOK_ADDRESS=ftp://x", "WEBHOOK_TIMEOUT=soon",
		"RETRY_MAXATTEMPTS=-2", "FILE_MAXSIZE=-1"}, "config", "check")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{"configuration is invalid", `listenport: invalid value "http"`, "webhook.address must be an http:// or https:// URL",
		`webhook.timeout: invalid value "soon"`, "file.maxsize must not be negative"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestConfigCheckRedactsSecrets(t *testing.T) {
	code, stdout, stderr := run(t, []string{"WEBHOOK_ADDRESS=http://user:pw@sink:8080/x", "WEBHOOK_CUSTOMHEADERS=Authorization:Bearer SUPERSECRET-TOKEN"}, "config", "check")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout+stderr, "SUPERSECRET") {
		t.Errorf("secret printed:\n%s", stdout)
	}
	for _, want := range []string{"webhook.customheaders", "REDACTED", "listenport: 2801", "# enabled outputs: webhook"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

func TestConfigCheckWarnsUnknownYAMLKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.yaml")
	_ = os.WriteFile(file, []byte("listenprot: 2802\nwebhook:\n  adress: http://x\n"), 0o600)
	code, _, stderr := run(t, nil, "config", "check", "-c", file)
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{`unknown key "listenprot" ignored (did you mean "listenport"?)`, `unknown key "webhook.adress" ignored (did you mean "webhook.address"?)`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestInvalidConfigStopsStartup(t *testing.T) {
	code, _, stderr := run(t, []string{"LISTENPORT=99999"})
	if code != 1 || !strings.Contains(stderr, "listenport must be 1-65535, got 99999") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, stdout, _ := run(t, nil, args...)
		if code != 0 || strings.TrimSpace(stdout) != "saker "+testVersion {
			t.Errorf("%v: %d %q", args, code, stdout)
		}
	}
	if code, _, stderr := run(t, nil, "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %s", code, stderr)
	}
}

// TestSIGTERMWithHungOutputLosesNothing: the webhook never answers; on SIGTERM, once
// shutdowntimeout has passed, every accepted event — the ones whose request hangs and the
// ones still queued — is in the dead-letter file with reason shutdown, and saker exits 0.
func TestSIGTERMWithHungOutputLosesNothing(t *testing.T) {
	s := newSink(t, func(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	dead := filepath.Join(t.TempDir(), "dead.jsonl")
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL, "WEBHOOK_MAXCONCURRENTREQUESTS=4", "DEADLETTER_PATH="+dead, "SHUTDOWNTIMEOUT=300ms")
	const n = 20
	for i := 0; i < n; i++ {
		d.mustPost(t, falcoEvent)
	}
	for i := 0; i < 4; i++ {
		s.next(t) // the four workers' requests hang
	}
	if code := d.sigterm(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	recs := waitLines(t, dead, n)
	uuids := map[any]bool{}
	for _, r := range recs {
		if r["reason"] != "shutdown" {
			t.Errorf("dead letter %v", r)
		}
		uuids[r["event"].(map[string]any)["uuid"]] = true
	}
	if len(recs) != n || len(uuids) != n {
		t.Errorf("%d dead letters for %d distinct events, want %d", len(recs), len(uuids), n)
	}
}

// TestEchoedTokenLeaksNowhere: receivers answer 404 quoting the request path, which holds the
// token of a Mattermost and of a webhook URL. Neither token reaches the log, /healthz or the
// dead-letter file.
func TestEchoedTokenLeaksNowhere(t *testing.T) {
	s := newSink(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "Cannot POST %s", r.URL.Path)
	})
	const chatToken, hookToken = "CHATtoken123abc", "HOOKtoken456def"
	dead := filepath.Join(t.TempDir(), "dead.jsonl")
	d := start(t, "MATTERMOST_WEBHOOKURL="+s.srv.URL+"/hooks/"+chatToken, "WEBHOOK_ADDRESS="+s.srv.URL+"/in/"+hookToken+"?sig=QUERYsig789",
		"DEADLETTER_PATH="+dead, "DEBUG=true")
	d.mustPost(t, falcoEvent)
	recs := waitLines(t, dead, 2)
	resp, err := http.Get(d.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	health, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if code := d.sigterm(t); code != 0 {
		t.Errorf("exit %d", code)
	}
	deadText, _ := os.ReadFile(dead)
	for where, text := range map[string]string{"log": d.stderr.String(), "/healthz": string(health), "dead letter": string(deadText)} {
		for _, secret := range []string{chatToken, hookToken, "QUERYsig789"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds %s:\n%s", where, secret, text)
			}
		}
	}
	for _, r := range recs {
		if r["reason"] != "permanent" || !strings.Contains(fmt.Sprint(r["error"]), "status 404: Cannot POST /REDACTED") {
			t.Errorf("dead letter %v", r)
		}
	}
}

// TestCPUProfileFlag: --cpuprofile writes the daemon's CPU profile, from start to shutdown
// (what make pgo turns into default.pgo); a path that cannot be written stops start-up.
func TestCPUProfileFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	port := testpeers.FreePort(t)
	d := startWithArgs(t, fmt.Sprintf("http://127.0.0.1:%d/ping", port), []string{"--cpuprofile", path},
		"LISTENADDRESS=127.0.0.1", fmt.Sprintf("LISTENPORT=%d", port))
	d.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	d.mustPost(t, falcoEvent)
	if code := d.sigterm(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f) // a pprof profile is a gzipped protocol buffer
	if err != nil {
		t.Fatalf("the profile is not gzipped: %v", err)
	}
	if b, err := io.ReadAll(zr); err != nil || len(b) == 0 {
		t.Fatalf("profile: %d bytes, %v", len(b), err)
	}

	code, _, stderr := run(t, nil, "--cpuprofile", filepath.Join(t.TempDir(), "missing", "cpu.pprof"))
	if code != 1 || !strings.Contains(stderr, "--cpuprofile") {
		t.Errorf("unwritable profile: exit %d, stderr %q; want 1 and the flag named", code, stderr)
	}
}
