package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/testpeers"
)

// postAuth posts body to path with the Authorization header authz (none when empty).
func (d *daemon) postAuth(t *testing.T, path, authz, body string) (int, string) {
	t.Helper()
	code, b, _ := request(t, http.MethodPost, d.url+path, authz, body)
	return code, b
}

// request sends a request with the Authorization header authz (none when empty) and a JSON
// body (none when empty), and returns the answer.
func request(t *testing.T, method, url, authz, body string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestAuthTokenOnEveryInput: with AUTH_TOKEN (or auth.tokenfile), POST /, /test and
// /k8s-audit answer 401 without the token and nothing reaches the output; /ping and /healthz
// stay open.
func TestAuthTokenOnEveryInput(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("file-token-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string][]string{
		"AUTH_TOKEN":     {"AUTH_TOKEN=file-token-123"},
		"AUTH_TOKENFILE": {"AUTH_TOKENFILE=" + tokenFile},
	} {
		t.Run(name, func(t *testing.T) {
			s := newSink(t, nil)
			d := start(t, append(env, "WEBHOOK_ADDRESS="+s.srv.URL)...)
			for _, path := range []string{"/", "/test", "/k8s-audit"} {
				for _, authz := range []string{"", "Bearer wrong", "Bearer file-token-12"} {
					if code, body := d.postAuth(t, path, authz, falcoEvent); code != http.StatusUnauthorized {
						t.Errorf("POST %s with %q: %d %s, want 401", path, authz, code, body)
					}
				}
			}
			s.none(t)
			if code, body := d.postAuth(t, "/", "Bearer file-token-123", falcoEvent); code != http.StatusOK {
				t.Fatalf("POST / with the token: %d %s", code, body)
			}
			s.next(t)
			for _, path := range []string{"/ping", "/healthz"} {
				resp, err := http.Get(d.url + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s: %d, want 200 (open without auth.protectall)", path, resp.StatusCode)
				}
			}
			resp, err := http.Get(d.url + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), `falcosecurity_falcosidekick_inputs_total{source="requests",status="unauthorized"} 6`) {
				t.Errorf("401s on POST / and /test not counted:\n%s", grepLines(string(b), "unauthorized"))
			}
			if strings.Contains(d.stderr.String(), "file-token") || strings.Contains(d.stderr.String(), "/bin/hack") {
				t.Errorf("the log holds a token or a refused body:\n%s", d.stderr.String())
			}
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestAuthConfigCheck(t *testing.T) {
	code, stdout, stderr := run(t, []string{"AUTH_TOKEN=SUPERSECRET-TOKEN", "AUTH_BASIC_USER=falco", "AUTH_BASIC_PASSWORD=SUPERSECRET-PW"}, "config", "check")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout+stderr, "SUPERSECRET") {
		t.Errorf("secret printed:\n%s", stdout)
	}
	code, _, stderr = run(t, []string{"AUTH_BASIC_USER=falco", "AUTH_PROTECTALL=true"}, "config", "check")
	if code != 1 || !strings.Contains(stderr, "auth.basic.user and auth.basic.password must be set together") {
		t.Errorf("basic user without password: exit %d\n%s", code, stderr)
	}
	code, _, stderr = run(t, []string{"AUTH_TOKENFILE=/nonexistent/token"})
	if code != 1 || !strings.Contains(stderr, "auth.tokenfile") {
		t.Errorf("missing token file: exit %d\n%s", code, stderr)
	}
}

// eventWith is falcoEvent with another priority and a marker output field.
func eventWith(t *testing.T, priority string, seq int) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(falcoEvent), &m); err != nil {
		t.Fatal(err)
	}
	m["priority"] = priority
	m["output_fields"].(map[string]any)["test.seq"] = seq
	b, _ := json.Marshal(m)
	return string(b)
}

func seqOf(t *testing.T, h hit) int {
	t.Helper()
	var m struct {
		OutputFields map[string]any `json:"output_fields"`
	}
	if err := json.Unmarshal(h.body, &m); err != nil {
		t.Fatalf("webhook body %s: %v", h.body, err)
	}
	n, _ := m.OutputFields["test.seq"].(float64)
	return int(n)
}

// metrics returns the lines of /metrics holding name.
func (d *daemon) metrics(t *testing.T, name string) string {
	t.Helper()
	resp, err := http.Get(d.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return grepLines(string(b), name)
}

func healthOf(t *testing.T, d *daemon, output string) map[string]any {
	t.Helper()
	resp, err := http.Get(d.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Outputs []map[string]any `json:"outputs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	for _, o := range body.Outputs {
		if o["name"] == output {
			return o
		}
	}
	t.Fatalf("/healthz has no output %s", output)
	return nil
}

// TestFilterAndDedupThroughTheDaemon: WEBHOOK_FILTER keeps Notice out, WEBHOOK_DEDUP_WINDOW
// lets one of five identical alerts through, and /healthz counts both.
func TestFilterAndDedupThroughTheDaemon(t *testing.T) {
	s := newSink(t, nil)
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL, "WEBHOOK_FILTER=priority >= warning and output_fields[user.name] = root",
		"WEBHOOK_DEDUP_WINDOW=1m")
	d.mustPost(t, eventWith(t, "Notice", 1))
	for i := 0; i < 5; i++ {
		d.mustPost(t, eventWith(t, "Error", 2)) // identical
	}
	d.mustPost(t, eventWith(t, "Critical", 3))
	// The webhook sends concurrently: the two deliveries may come in either order.
	got := map[int]bool{seqOf(t, s.next(t)): true, seqOf(t, s.next(t)): true}
	if !got[2] || !got[3] {
		t.Fatalf("delivered %v, want seq 2 and 3 (Notice filtered, duplicates suppressed)", got)
	}
	// Workers settle the duplicates concurrently with the deliveries: wait for /healthz to
	// count them all.
	until := time.Now().Add(deadline)
	for {
		h := healthOf(t, d, "webhook")
		if h["filtered"] == float64(1) && h["suppressed"] == float64(4) {
			break
		}
		if time.Now().After(until) {
			t.Fatalf("/healthz webhook: filtered %v suppressed %v, want 1 and 4", h["filtered"], h["suppressed"])
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{`saker_filtered_total{output="webhook"} 1`, `saker_suppressed_total{output="webhook"} 4`} {
		if got := d.metrics(t, want); got == "" {
			t.Errorf("/metrics has no %s:\n%s", want, d.metrics(t, "saker_"))
		}
	}
	s.none(t)
}

// TestRateLimitThroughTheDaemon: 6 events at 10/s with burst 1 arrive paced, all of them.
func TestRateLimitThroughTheDaemon(t *testing.T) {
	s := newSink(t, nil)
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL, "WEBHOOK_RATELIMIT_RATE=10", "WEBHOOK_RATELIMIT_BURST=1")
	for i := 0; i < 6; i++ {
		d.mustPost(t, eventWith(t, "Error", 10+i))
	}
	var first, last time.Time
	seen := map[int]bool{}
	for i := 0; i < 6; i++ {
		h := s.next(t)
		seen[seqOf(t, h)] = true
		if i == 0 {
			first = h.at
		}
		last = h.at
	}
	if len(seen) != 6 {
		t.Errorf("delivered %v, want 6 distinct events", seen)
	}
	if gap := last.Sub(first); gap < 450*time.Millisecond {
		t.Errorf("6 events at 10/s burst 1 spread over %s, want >= 0.5 s", gap)
	}
	rl := healthOf(t, d, "webhook")["rate_limited"].(float64)
	if rl < 4 {
		t.Errorf("/healthz rate_limited = %v, want >= 4", rl)
	}
	if want := fmt.Sprintf(`saker_ratelimited_total{output="webhook"} %v`, rl); d.metrics(t, want) == "" {
		t.Errorf("/metrics has no %s:\n%s", want, d.metrics(t, "saker_ratelimited_total"))
	}
}

func TestFilterErrorStopsStartup(t *testing.T) {
	code, _, stderr := run(t, []string{"WEBHOOK_ADDRESS=http://sink", "WEBHOOK_FILTER=priority >>>= nonsense"})
	if code != 1 || !strings.Contains(stderr, "webhook.filter: column 11: expected a number or a level name") {
		t.Errorf("exit %d\n%s", code, stderr)
	}
}

// TestSIGHUPReloadsFilter: SIGHUP applies a new filter from the file; a broken file is
// refused with its reason logged, and the previous filter keeps routing.
func TestSIGHUPReloadsFilter(t *testing.T) {
	s := newSink(t, nil)
	d, write := startWithFilterFile(t, s, "priority >= critical")
	metric := func(name string) string { t.Helper(); return d.metrics(t, name) }
	// waitReload waits until saker_config_reloads_total{result} reaches n.
	waitReload := func(result string, n int) {
		t.Helper()
		want := fmt.Sprintf(`saker_config_reloads_total{result=%q} %d`, result, n)
		until := time.Now().Add(deadline)
		for !strings.Contains(metric("saker_config_reloads_total"), want) {
			if time.Now().After(until) {
				t.Fatalf("no %s\n%s", want, d.stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	d.mustPost(t, eventWith(t, "Error", 1)) // filtered out
	write("priority >= warning")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitReload("success", 1)
	if f := healthOf(t, d, "webhook")["filtered"]; f != float64(1) {
		t.Errorf("/healthz filtered = %v after the reload, want the 1 counted before it", f)
	}
	d.mustPost(t, eventWith(t, "Error", 2))
	if got := seqOf(t, s.next(t)); got != 2 {
		t.Fatalf("delivered seq %d, want 2 (seq 1 filtered before the reload)", got)
	}
	write("priority >>>= nonsense")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitReload("error", 1)
	d.waitLogged(t, "webhook.filter: column 11") // the refused reload's reason
	d.mustPost(t, eventWith(t, "Error", 3))
	if got := seqOf(t, s.next(t)); got != 3 {
		t.Fatalf("delivered seq %d, want 3 (the previous filter keeps routing)", got)
	}
	if !strings.Contains(metric("saker_config_last_reload_success_timestamp_seconds"), "saker_config_last_reload_success_timestamp_seconds ") {
		t.Error("no last-good-load timestamp")
	}
	if code := d.sigterm(t); code != 0 {
		t.Errorf("exit %d after reloads", code)
	}
}

// TestAuthTokenWithMutualTLS: with tlsserver.mutualtls and auth.token, a client needs both,
// on the main listener and on the dedicated audit listener.
func TestAuthTokenWithMutualTLS(t *testing.T) {
	pki := testpeers.NewPKI(t)
	mainPort, auditPort, plainPort := testpeers.FreePort(t), testpeers.FreePort(t), testpeers.FreePort(t)
	startWithProbe(t, fmt.Sprintf("http://127.0.0.1:%d/ping", plainPort),
		"LISTENADDRESS=127.0.0.1", fmt.Sprintf("LISTENPORT=%d", mainPort), "AUTH_TOKEN=tls-and-token",
		"TLSSERVER_DEPLOY=true", "TLSSERVER_MUTUALTLS=true", "TLSSERVER_CERTFILE="+pki.ServerCertFile,
		"TLSSERVER_KEYFILE="+pki.ServerKeyFile, "TLSSERVER_CACERTFILE="+pki.CAFile, fmt.Sprintf("TLSSERVER_NOTLSPORT=%d", plainPort),
		"K8SAUDIT_LISTENADDRESS=127.0.0.1", fmt.Sprintf("K8SAUDIT_LISTENPORT=%d", auditPort))
	withCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool,
		Certificates: []tls.Certificate{pki.ClientCert}}}}
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}}}
	post := func(c *http.Client, url, body, token string) (int, error) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, url := range []string{fmt.Sprintf("https://127.0.0.1:%d/k8s-audit", mainPort), fmt.Sprintf("https://127.0.0.1:%d/k8s-audit", auditPort),
		fmt.Sprintf("https://127.0.0.1:%d/", mainPort)} {
		body := auditEvent
		if strings.HasSuffix(url, "/") {
			body = falcoEvent
		}
		if code, err := post(noCert, url, body, "tls-and-token"); err == nil {
			t.Errorf("%s: token without a client certificate got %d", url, code)
		}
		if code, err := post(withCert, url, body, ""); err != nil || code != http.StatusUnauthorized {
			t.Errorf("%s: certificate without the token: %d %v, want 401", url, code, err)
		}
		if code, err := post(withCert, url, body, "tls-and-token"); err != nil || code != http.StatusOK {
			t.Errorf("%s: certificate and token: %d %v, want 200", url, code, err)
		}
	}
}

// TestHTTPReload: POST /-/reload needs the inputs' credentials, answers 400 with the reason
// for a broken file (the running filter stays) and 200 when it applied a new filter.
func TestHTTPReload(t *testing.T) {
	s := newSink(t, nil)
	d, write := startWithFilterFile(t, s, "priority >= critical", "AUTH_TOKEN=reload-token")
	write("priority >= warning")
	if code, body := d.postAuth(t, "/-/reload", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("POST /-/reload without the token: %d %s", code, body)
	}
	write("priority >>>= nonsense")
	if code, body := d.postAuth(t, "/-/reload", "Bearer reload-token", ""); code != http.StatusBadRequest || !strings.Contains(body, "webhook.filter: column 11") {
		t.Fatalf("broken file: %d %s", code, body)
	}
	if code, _ := d.postAuth(t, "/", "Bearer reload-token", eventWith(t, "Error", 1)); code != http.StatusOK {
		t.Fatalf("POST /: %d", code)
	}
	write("priority >= warning")
	if code, body := d.postAuth(t, "/-/reload", "Bearer reload-token", ""); code != http.StatusOK {
		t.Fatalf("valid file: %d %s", code, body)
	}
	if code, _ := d.postAuth(t, "/", "Bearer reload-token", eventWith(t, "Error", 2)); code != http.StatusOK {
		t.Fatalf("POST /: %d", code)
	}
	if got := seqOf(t, s.next(t)); got != 2 {
		t.Fatalf("delivered seq %d, want 2 (seq 1 filtered by the running filter)", got)
	}
}

// TestReloadUnderLoadLosesNothing: SIGHUPs while events stream in change the filter back and
// forth between two that both pass them; every event is delivered exactly once.
func TestReloadUnderLoadLosesNothing(t *testing.T) {
	s := newSink(t, nil)
	d, write := startWithFilterFile(t, s, "priority >= warning")
	const n = 400
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		for i := 0; i < n; i++ {
			resp, err := http.Post(d.url+"/", "application/json", strings.NewReader(eventWith(t, "Error", 1000+i)))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("POST / seq %d: %d", 1000+i, resp.StatusCode)
			}
		}
	}()
	filters := []string{"priority >= error", "priority >= warning and source != nothing"}
	for i := 0; ; i++ {
		select {
		case <-posted:
		default:
			write(filters[i%2])
			if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // spread the reloads over the stream
			continue
		}
		break
	}
	seen := map[int]int{}
	for len(seen) < n {
		seen[seqOf(t, s.next(t))]++
	}
	for seq, c := range seen {
		if c != 1 || seq < 1000 || seq >= 1000+n {
			t.Errorf("seq %d delivered %d times", seq, c)
		}
	}
	if !strings.Contains(d.stderr.String(), "configuration reloaded") {
		t.Error("no reload happened during the stream")
	}
}

// startWithFilterFile starts saker with a configuration file that sends to s through the
// webhook output with filter, and returns write, which rewrites the file with another
// filter (for the reload tests). env is added to the listener's settings.
func startWithFilterFile(t *testing.T, s *sink, filter string, env ...string) (*daemon, func(filter string)) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "saker.yaml")
	write := func(filter string) {
		t.Helper()
		writeAtomic(t, file, fmt.Sprintf("webhook:\n  address: %s\n  filter: '%s'\n", s.srv.URL, filter))
	}
	write(filter)
	port := testpeers.FreePort(t)
	d := startWithArgs(t, fmt.Sprintf("http://127.0.0.1:%d/ping", port), []string{"-c", file},
		append([]string{"LISTENADDRESS=127.0.0.1", fmt.Sprintf("LISTENPORT=%d", port)}, env...)...)
	d.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	return d, write
}
