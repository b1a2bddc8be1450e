package smtp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/engine/metrics"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

// mailpit is a running mailpit: SMTP on smtp, its API on api.
type mailpit struct {
	smtp string
	api  string
}

// startMailpit runs mailpit on the given ports with extra flags.
func startMailpit(t *testing.T, smtpPort, webPort int, extra ...string) *mailpit {
	t.Helper()
	bin := testpeers.Bin(t, "mailpit")
	dir := t.TempDir()
	args := append([]string{bin, "--smtp", "127.0.0.1:" + strconv.Itoa(smtpPort), "--listen", "127.0.0.1:" + strconv.Itoa(webPort),
		"--database", filepath.Join(dir, "m.db"), "--disable-version-check"}, extra...)
	testpeers.Start(t, "mailpit", args, nil, func() bool {
		return testpeers.PortOpen(smtpPort) && testpeers.PortOpen(webPort)
	}, 20*time.Second)
	return &mailpit{smtp: fmt.Sprintf("127.0.0.1:%d", smtpPort), api: fmt.Sprintf("http://127.0.0.1:%d", webPort)}
}

type summary struct {
	ID      string
	Subject string
	From    struct{ Address string }
	To      []struct{ Address string }
}

func (m *mailpit) messages(t *testing.T) []summary {
	t.Helper()
	var out struct{ Messages []summary }
	m.get(t, "/api/v1/messages?limit=500", &out)
	return out.Messages
}

type message struct {
	Subject   string
	Text      string
	HTML      string
	MessageID string
	Date      string
}

func (m *mailpit) message(t *testing.T, id string) message {
	t.Helper()
	var out message
	m.get(t, "/api/v1/message/"+id, &out)
	return out
}

func (m *mailpit) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(m.api + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func testEnv(concurrency int) outputs.Env {
	p := delivery.DefaultPolicy()
	p.MaxConcurrentRequests = concurrency
	return outputs.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Policy: p}
}

func testEvent(i int, prio event.Priority) *event.Event {
	return &event.Event{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
		Output: fmt.Sprintf("File <below> & known binary dir #%d", i), Priority: prio, Rule: "Write below binary dir",
		Time: time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC), Source: "syscall", Hostname: "h",
		OutputFields: map[string]any{"fd.name": "/bin/<x>", "proc.pid": 42, "container.id": nil}}
}

func plainConfig(addr string) *Config {
	c := defaults()
	c.HostPort, c.TLS, c.AuthMechanism = addr, false, "none"
	c.From, c.To = "Falco <falco@example.com>", []string{"sec@example.com", "soc@example.com"}
	return c
}

// TestMailpit sends three events through one output: mailpit stores three messages with the
// expected headers and bodies, all over a single SMTP session.
func TestMailpit(t *testing.T) {
	mp := startMailpit(t, testpeers.FreePort(t), testpeers.FreePort(t), "--smtp-auth-accept-any", "--smtp-auth-allow-insecure")
	out, err := New(plainConfig(mp.smtp), testEnv(4))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 1; i <= 3; i++ {
		if err := out.Send(ctx, testEvent(i, event.Error)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if n := out.dialer.dials.Load(); n != 1 {
		t.Errorf("%d SMTP sessions for 3 sequential events, want 1 reused", n)
	}
	var msgs []summary
	testpeers.Eventually(t, 10*time.Second, func() bool { msgs = mp.messages(t); return len(msgs) == 3 },
		"mailpit holds %d messages, want 3", len(msgs))
	for _, s := range msgs {
		if !strings.HasPrefix(s.Subject, "[Error] File <below> & known binary dir #") {
			t.Errorf("subject %q", s.Subject)
		}
		if s.From.Address != "falco@example.com" || len(s.To) != 2 {
			t.Errorf("from %v to %v", s.From, s.To)
		}
		m := mp.message(t, s.ID)
		if !strings.Contains(m.Text, "Rule: Write below binary dir") || !strings.Contains(m.Text, "container.id: null") {
			t.Errorf("text part:\n%s", m.Text)
		}
		if !strings.Contains(m.HTML, "/bin/&lt;x&gt;") || strings.Contains(m.HTML, "/bin/<x>") {
			t.Errorf("html part not escaped:\n%s", m.HTML)
		}
		if !strings.HasSuffix(m.MessageID, "@example.com") {
			t.Errorf("Message-ID %q", m.MessageID)
		}
	}
}

// TestStartTLSAuth: tls=true upgrades with STARTTLS (certificate checked against the CA file),
// then authenticates with PLAIN; a wrong password is a permanent failure that does not leak.
func TestStartTLSAuth(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	authFile := filepath.Join(dir, "auth")
	if err := os.WriteFile(authFile, []byte("saker:right-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mp := startMailpit(t, testpeers.FreePort(t), testpeers.FreePort(t), "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile,
		"--smtp-require-starttls", "--smtp-auth-file", authFile)
	env := testEnv(2)
	env.TLS = httpout.TLSFiles{CACertFile: certFile}
	for _, mech := range []string{"plain", "login"} {
		c := plainConfig(mp.smtp)
		c.TLS, c.AuthMechanism, c.User, c.Password = true, mech, "saker", "right-pass"
		out, err := New(c, env)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := out.Send(ctx, testEvent(1, event.Critical)); err != nil {
			t.Fatalf("%s over STARTTLS: %v", mech, err)
		}
		cancel()
		out.Close()
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(mp.messages(t)) == 2 }, "2 messages over STARTTLS")

	c := plainConfig(mp.smtp)
	c.TLS, c.AuthMechanism, c.User, c.Password = true, "plain", "saker", "wrong-pass-zz9"
	out, err := New(c, env)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = out.Send(ctx, testEvent(2, event.Critical))
	if err == nil || !delivery.IsPermanent(err) {
		t.Errorf("wrong password: %v, want a permanent error", err)
	} else if strings.Contains(err.Error(), "wrong-pass-zz9") {
		t.Errorf("error leaks the password: %v", err)
	}

	// Without STARTTLS on offer, tls=true refuses to send in clear text.
	plain := startMailpit(t, testpeers.FreePort(t), testpeers.FreePort(t))
	c = plainConfig(plain.smtp)
	c.TLS = true
	out2, err := New(c, env)
	if err != nil {
		t.Fatal(err)
	}
	defer out2.Close()
	if err := out2.Send(ctx, testEvent(3, event.Critical)); err == nil || !delivery.IsPermanent(err) {
		t.Errorf("tls=true against a server without STARTTLS: %v, want a permanent error", err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestDownThenUp queues events while nothing listens, then starts mailpit: the engine's
// retries deliver every event once, over at most maxconcurrentrequests sessions.
func TestDownThenUp(t *testing.T) {
	smtpPort, webPort := testpeers.FreePort(t), testpeers.FreePort(t)
	const workers = 3
	out, err := New(plainConfig(fmt.Sprintf("127.0.0.1:%d", smtpPort)), testEnv(workers))
	if err != nil {
		t.Fatal(err)
	}
	p := delivery.DefaultPolicy()
	p.MaxConcurrentRequests = workers
	p.Timeout = 3 * time.Second
	p.Retry.Initial = 50 * time.Millisecond
	p.Retry.Max = 300 * time.Millisecond
	eng := deliverytest.Start(t, out, p)
	const n = 15
	for i := 0; i < n; i++ {
		if _, err := eng.Publish(context.Background(), testEvent(i, event.Warning), []string{"smtp"}); err != nil {
			t.Fatal(err)
		}
	}
	mp := startMailpit(t, smtpPort, webPort)
	var msgs []summary
	testpeers.Eventually(t, 20*time.Second, func() bool { msgs = mp.messages(t); return len(msgs) >= n },
		"mailpit holds %d of %d messages", len(msgs), n)
	if lost := eng.Stop(5 * time.Second); lost != 0 {
		t.Errorf("%d events lost", lost)
	}
	seen := map[string]bool{}
	for _, s := range mp.messages(t) {
		seen[s.Subject] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages, want %d", len(seen), n)
	}
	// Failed dials count too; successful sessions are bounded by the pool, checked in
	// TestMailpit. Here every event must have been delivered.
}

// TestMinimumPriority: the engine's Route honours smtp.minimumpriority.
func TestMinimumPriority(t *testing.T) {
	out, err := New(plainConfig("127.0.0.1:25"), testEnv(1))
	if err != nil {
		t.Fatal(err)
	}
	eng := delivery.NewEngine(delivery.NewMemoryBus(), metrics.New(0), nil, nil)
	p := delivery.DefaultPolicy()
	p.MinimumPriority = "critical"
	if err := eng.Add(out, p); err != nil {
		t.Fatal(err)
	}
	if got := eng.Route(testEvent(1, event.Error), ""); len(got) != 0 {
		t.Errorf("error routed to %v", got)
	}
	if got := eng.Route(testEvent(1, event.Alert), ""); len(got) != 1 || got[0] != "smtp" {
		t.Errorf("alert routed to %v", got)
	}
}

func TestValidate(t *testing.T) {
	ok := func() *Config { return plainConfig("mail.example.com:587") }
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) {}, ""},
		{func(c *Config) { c.HostPort = ""; c.From = "" }, ""},
		{func(c *Config) { c.HostPort = "mail.example.com" }, "smtp.hostport"},
		{func(c *Config) { c.HostPort = "mail.example.com:x" }, "smtp.hostport"},
		{func(c *Config) { c.From = "" }, "smtp.from"},
		{func(c *Config) { c.From = "not an address" }, "smtp.from"},
		{func(c *Config) { c.To = nil }, "smtp.to"},
		{func(c *Config) { c.To = []string{"a@example.com,bad"} }, "smtp.to"},
		{func(c *Config) { c.AuthMechanism = "cram-md5" }, "smtp.authmechanism"},
		{func(c *Config) { c.AuthMechanism = "oauthbearer" }, "smtp.token"},
		{func(c *Config) { c.OutputFormat = "markdown" }, "smtp.outputformat"},
		{func(c *Config) { c.SubjectTemplate = "{{ .Nope }}" }, "smtp.subjecttemplate"},
		{func(c *Config) { c.SubjectTemplate = "{{ .Rule " }, "smtp.subjecttemplate"},
	} {
		c := ok()
		tc.mut(c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("unexpected error %v", err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("error %v, want one naming %s", err, tc.want)
		}
	}
}

func TestRecipientsFromEnvString(t *testing.T) {
	got := recipients([]string{"a@example.com, b@example.com", " c@example.com"})
	if strings.Join(got, "|") != "a@example.com|b@example.com|c@example.com" {
		t.Errorf("recipients %q", got)
	}
}
