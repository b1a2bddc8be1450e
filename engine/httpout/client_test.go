package httpout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/testpeers"
)

func statusServer(t *testing.T, status int, header map[string]string, body string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func newClient(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStatusMapping(t *testing.T) {
	c := newClient(t, Options{CheckCert: true})
	cases := []struct {
		status    int
		ok        bool
		permanent bool
	}{
		{200, true, false}, {201, true, false}, {204, true, false},
		{400, false, true}, {401, false, true}, {403, false, true}, {404, false, true}, {413, false, true},
		{408, false, false}, {429, false, false}, {500, false, false}, {502, false, false}, {503, false, false}, {504, false, false},
	}
	for _, tc := range cases {
		s := statusServer(t, tc.status, nil, "reason from server")
		resp, err := c.Do(context.Background(), Request{URL: s.URL + "/hook", Body: []byte("{}")})
		// Send, which does not copy the answer out, classifies the outcome as Do does.
		sendErr := c.Send(context.Background(), Request{URL: s.URL + "/hook", Body: []byte("{}")})
		if (sendErr == nil) != (err == nil) || sendErr != nil && (sendErr.Error() != err.Error() || delivery.IsPermanent(sendErr) != delivery.IsPermanent(err)) {
			t.Errorf("%d: Send returned %v, Do %v", tc.status, sendErr, err)
		}
		if tc.ok {
			if err != nil || resp.Status != tc.status || (tc.status != 204 && string(resp.Body) != "reason from server") {
				t.Errorf("%d: %v %+v", tc.status, err, resp)
			}
			continue
		}
		if err == nil {
			t.Errorf("%d: no error", tc.status)
			continue
		}
		if delivery.IsPermanent(err) != tc.permanent {
			t.Errorf("%d: permanent=%v, want %v", tc.status, delivery.IsPermanent(err), tc.permanent)
		}
		for _, want := range []string{"POST", s.URL + "/hook", "reason from server"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%d: error %q lacks %q", tc.status, err, want)
			}
		}
		if !strings.Contains(err.Error(), "status ") {
			t.Errorf("%d: error %q does not give the status", tc.status, err)
		}
	}
}

// TestTransientStatus: a status the request lists as transient is retried, not given up;
// the others keep their classification.
func TestTransientStatus(t *testing.T) {
	c := newClient(t, Options{CheckCert: true})
	for status, permanent := range map[int]bool{404: false, 400: true} {
		s := statusServer(t, status, nil, "Cannot POST /hook")
		err := c.Send(context.Background(), Request{URL: s.URL + "/hook", Body: []byte("{}"), TransientStatus: []int{404}})
		if err == nil || delivery.IsPermanent(err) != permanent || !strings.Contains(err.Error(), fmt.Sprintf("status %d: Cannot POST", status)) {
			t.Errorf("%d: %v, want permanent=%v", status, err, permanent)
		}
	}
}

// TestAcceptStatus: a status the request accepts comes back as a Response with its body;
// the others stay errors.
func TestAcceptStatus(t *testing.T) {
	c := newClient(t, Options{CheckCert: true})
	s := statusServer(t, http.StatusConflict, nil, `{"reason":"Conflict"}`)
	resp, err := c.Do(context.Background(), Request{Method: http.MethodPut, URL: s.URL, AcceptStatus: []int{404, 409}})
	if err != nil || resp.Status != http.StatusConflict || string(resp.Body) != `{"reason":"Conflict"}` {
		t.Errorf("accepted 409: %+v, %v", resp, err)
	}
	if err := c.Send(context.Background(), Request{URL: s.URL, AcceptStatus: []int{404}}); err == nil || !delivery.IsPermanent(err) {
		t.Errorf("409 not accepted: %v, want a permanent error", err)
	}
}

func TestRetryAfter(t *testing.T) {
	c := newClient(t, Options{CheckCert: true})
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		status int
		header string
		min    time.Duration
		max    time.Duration
		hinted bool
	}{
		{429, "7", 7 * time.Second, 7 * time.Second, true},
		{503, "0", 0, 0, true},
		{503, date, 85 * time.Second, 90 * time.Second, true},
		{429, "soon", 0, 0, false},
		{429, "", 0, 0, false},
		{500, "7", 0, 0, false}, // Retry-After only counts on 429 and 503
	} {
		s := statusServer(t, tc.status, map[string]string{"Retry-After": tc.header}, "")
		_, err := c.Do(context.Background(), Request{URL: s.URL})
		d, ok := delivery.RetryAfterHint(err)
		if ok != tc.hinted || d < tc.min || d > tc.max {
			t.Errorf("%d Retry-After %q: hint %s %v, want [%s,%s] %v", tc.status, tc.header, d, ok, tc.min, tc.max, tc.hinted)
		}
		if delivery.IsPermanent(err) {
			t.Errorf("%d is permanent", tc.status)
		}
	}
}

// TestRetryAfterFromBody: Request.RetryAfter reads a delay from the body of a 429 or 503
// without a Retry-After header; the header wins when there is one.
func TestRetryAfterFromBody(t *testing.T) {
	c := newClient(t, Options{CheckCert: true})
	fromBody := func(body []byte) (time.Duration, bool) {
		n, err := strconv.Atoi(strings.TrimSpace(string(body)))
		return time.Duration(n) * time.Second, err == nil
	}
	for _, tc := range []struct {
		status int
		header string
		want   time.Duration
		hinted bool
	}{
		{429, "", 5 * time.Second, true},
		{503, "", 5 * time.Second, true},
		{429, "2", 2 * time.Second, true},
		{500, "", 0, false},
	} {
		s := statusServer(t, tc.status, map[string]string{"Retry-After": tc.header}, "5")
		_, err := c.Do(context.Background(), Request{URL: s.URL, RetryAfter: fromBody})
		if d, ok := delivery.RetryAfterHint(err); ok != tc.hinted || d != tc.want {
			t.Errorf("%d Retry-After %q: hint %s %v, want %s %v", tc.status, tc.header, d, ok, tc.want, tc.hinted)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"120": 2 * time.Minute, " 3 ": 3 * time.Second, "Mon, 01 Jan 2024 12:00:30 GMT": 30 * time.Second,
		"Mon, 01 Jan 2024 11:00:00 GMT": 0,
	} {
		if d, ok := ParseRetryAfter(v, now); !ok || d != want {
			t.Errorf("%q = %s %v, want %s", v, d, ok, want)
		}
	}
	for _, v := range []string{"", "-1", "1.5", "tomorrow"} {
		if d, ok := ParseRetryAfter(v, now); ok {
			t.Errorf("%q accepted as %s", v, d)
		}
	}
}

func TestHeadersAndUserAgent(t *testing.T) {
	got := make(chan *http.Request, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r }))
	defer s.Close()
	c := newClient(t, Options{CheckCert: true, Headers: map[string]string{"Authorization": "Bearer x", "X-Custom": "1", "X-Over": "output"}})
	_, err := c.Do(context.Background(), Request{Method: http.MethodPut, URL: s.URL, ContentType: "application/json",
		Body: []byte(`{"a":1}`), Headers: map[string]string{"X-Over": "request"}})
	if err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.Method != "PUT" || r.Header.Get("Authorization") != "Bearer x" || r.Header.Get("X-Custom") != "1" ||
		r.Header.Get("X-Over") != "request" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("User-Agent") != UserAgent {
		t.Errorf("request %s %v", r.Method, r.Header)
	}
}

func TestErrorsRedactCredentials(t *testing.T) {
	s := statusServer(t, 500, nil, "")
	u := strings.Replace(s.URL, "http://", "http://admin:hunter2@", 1) + "/x?api_key=abc123&token=tok&page=2"
	c := newClient(t, Options{CheckCert: true})
	_, err := c.Do(context.Background(), Request{URL: u})
	if err == nil {
		t.Fatal("no error")
	}
	for _, secret := range []string{"hunter2", "abc123", "tok&", "=tok"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks %q: %v", secret, err)
		}
	}
	if !strings.Contains(err.Error(), "page=2") {
		t.Errorf("error lost harmless parts: %v", err)
	}
	// Network errors too: nothing listens on this port.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	_, err = c.Do(context.Background(), Request{URL: "http://user:pa55word@" + addr + "/?secret=s3"})
	if err == nil || strings.Contains(err.Error(), "pa55word") || strings.Contains(err.Error(), "s3") || delivery.IsPermanent(err) {
		t.Errorf("network error %v", err)
	}
	// Outputs whose whole URL is secret give their own log form.
	_, err = c.Do(context.Background(), Request{URL: s.URL + "/services/T0/B0/SECRET", LogURL: "slack webhook"})
	if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "slack webhook") {
		t.Errorf("LogURL ignored: %v", err)
	}
	if got := Redact("::not a url"); got != "<unparseable URL>" {
		t.Errorf("Redact = %q", got)
	}
}

func TestTimeoutIsTransient(t *testing.T) {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer s.Close()
	defer close(release)
	c := newClient(t, Options{CheckCert: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Do(ctx, Request{URL: s.URL})
	if err == nil || delivery.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v", err)
	}
}

func okHandler(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		w.Header().Set("X-Client", r.TLS.PeerCertificates[0].Subject.CommonName)
	}
}

func TestCheckCert(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(okHandler))
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS() // self-signed
	defer s.Close()
	if _, err := newClient(t, Options{CheckCert: false}).Do(context.Background(), Request{URL: s.URL}); err != nil {
		t.Errorf("checkcert=false: %v", err)
	}
	_, err := newClient(t, Options{CheckCert: true}).Do(context.Background(), Request{URL: s.URL})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("checkcert=true against a self-signed server: %v", err)
	}
}

func TestCustomCA(t *testing.T) {
	p := testpeers.NewPKI(t)
	s := httptest.NewUnstartedServer(http.HandlerFunc(okHandler))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{p.ServerCert}}
	s.StartTLS()
	defer s.Close()
	c := newClient(t, Options{CheckCert: true, TLS: TLSFiles{CACertFile: p.CAFile}})
	if _, err := c.Do(context.Background(), Request{URL: s.URL}); err != nil {
		t.Errorf("server signed by the configured CA: %v", err)
	}
}

// TestTLSConfig: a TLS configuration given whole replaces the shared files' (the
// Kubernetes API server's own CA, not the system roots).
func TestTLSConfig(t *testing.T) {
	p := testpeers.NewPKI(t)
	s := httptest.NewUnstartedServer(http.HandlerFunc(okHandler))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{p.ServerCert}}
	s.StartTLS()
	defer s.Close()
	c := newClient(t, Options{TLSConfig: &tls.Config{RootCAs: p.Pool, MinVersion: tls.VersionTLS12}})
	if _, err := c.Do(context.Background(), Request{URL: s.URL}); err != nil {
		t.Errorf("server signed by the given CA: %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	p := testpeers.NewPKI(t)
	s := httptest.NewUnstartedServer(http.HandlerFunc(okHandler))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{p.ServerCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.Pool}
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	defer s.Close()
	files := DefaultTLSFiles(p.Dir)
	resp, err := newClient(t, Options{CheckCert: true, MutualTLS: true, TLS: files}).Do(context.Background(), Request{URL: s.URL})
	if err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	if resp.Header.Get("X-Client") != "client" {
		t.Errorf("server saw client %q", resp.Header.Get("X-Client"))
	}
	// Without the client certificate the server refuses the handshake.
	if _, err := newClient(t, Options{CheckCert: true, TLS: TLSFiles{CACertFile: files.CACertFile}}).Do(context.Background(), Request{URL: s.URL}); err == nil {
		t.Error("server requiring a client certificate accepted a client without one")
	}
}

func TestTLSFileErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.crt")
	if _, err := New(Options{TLS: TLSFiles{CACertFile: missing}}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing CA: %v", err)
	}
	junk := filepath.Join(dir, "junk.crt")
	_ = os.WriteFile(junk, []byte("not pem"), 0o600)
	if _, err := New(Options{TLS: TLSFiles{CACertFile: junk}}); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("junk CA: %v", err)
	}
	if _, err := New(Options{MutualTLS: true, TLS: TLSFiles{CertFile: missing, KeyFile: missing}}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing client cert: %v", err)
	}
}

func TestStatusErrorForSDKs(t *testing.T) {
	err := StatusError("POST", "https://es/_bulk", 429, http.Header{"Retry-After": {"2"}}, []byte(" too many \n"))
	if d, ok := delivery.RetryAfterHint(err); !ok || d != 2*time.Second {
		t.Errorf("hint %s %v", d, ok)
	}
	if err.Error() != "POST https://es/_bulk: status 429: too many" {
		t.Errorf("message %q", err)
	}
	if !delivery.IsPermanent(StatusError("GET", "u", 302, http.Header{}, nil)) {
		t.Error("302 not permanent")
	}
}

func TestBadURLIsPermanent(t *testing.T) {
	_, err := newClient(t, Options{}).Do(context.Background(), Request{URL: "http://[::1"})
	if err == nil || !delivery.IsPermanent(err) {
		t.Errorf("bad URL: %v", err)
	}
}
