package httpin

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// authListener is the fasthttp listener with a token and basic credentials, and an audit-like
// route (its own source) mounted next to POST /.
func authListener(t *testing.T, protectAll bool) *fastListener {
	return newFastListener(t, Options{Auth: Credentials{Token: "s3cret-token", BasicUser: "falco", BasicPassword: "pw", ProtectAll: protectAll}},
		func(s *Server) {
			s.HandleRoute("/k8s-audit", echoLength, Route{MaxBody: 1 << 20, LimitKey: "k8saudit.maxbatchsize", Source: "k8saudit"})
		})
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

func post(path, authz, body string) string {
	h := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", path, len(body))
	if authz != "" {
		h += "Authorization: " + authz + "\r\n"
	}
	return h + "\r\n" + body
}

func TestAuthProtectsInputs(t *testing.T) {
	f := authListener(t, false)
	unauthorized := func(source string) float64 {
		return testutil.ToFloat64(f.m.Inputs.WithLabelValues(source, "unauthorized"))
	}
	for _, path := range []string{"/", "/k8s-audit", "/test"} {
		for name, authz := range map[string]string{"none": "", "wrong token": "Bearer nope", "token prefix": "Bearer s3cret",
			"wrong password": basic("falco", "nope"), "token as basic": basic("s3cret-token", ""), "garbage": "Basic ???"} {
			code, body, h := f.raw(t, post(path, authz, goodEvent), nil)
			if code != http.StatusUnauthorized {
				t.Fatalf("%s with %s: status %d, want 401 (%s)", path, name, code, body)
			}
			if !strings.Contains(h.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(h.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("%s: WWW-Authenticate %q", path, h.Get("WWW-Authenticate"))
			}
			if strings.Contains(body, "Write below") {
				t.Errorf("the 401 echoes the body: %s", body)
			}
		}
	}
	if got := unauthorized("requests"); got != 12 {
		t.Errorf("unauthorized{requests} = %v, want 12", got)
	}
	if got := unauthorized("k8saudit"); got != 6 {
		t.Errorf("unauthorized{k8saudit} = %v, want 6", got)
	}
	for _, authz := range []string{"Bearer s3cret-token", "bearer  s3cret-token", basic("falco", "pw")} {
		if code, body, _ := f.raw(t, post("/", authz, goodEvent), nil); code != http.StatusOK {
			t.Errorf("POST / with %q: %d %s", authz, code, body)
		}
		if code, body, _ := f.raw(t, post("/k8s-audit", authz, "abc"), nil); code != http.StatusOK || body != "3" {
			t.Errorf("POST /k8s-audit with %q: %d %s", authz, code, body)
		}
	}
	for _, path := range []string{"/healthz", "/ping", "/metrics"} {
		if code, _, _ := f.raw(t, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n", nil); code != http.StatusOK {
			t.Errorf("GET %s without credentials: %d, want 200 (open unless protectall)", path, code)
		}
	}
}

func TestAuthProtectAll(t *testing.T) {
	f := authListener(t, true)
	for _, path := range []string{"/healthz", "/ping", "/metrics"} {
		if code, _, _ := f.raw(t, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials under protectall: %d, want 401", path, code)
		}
		if code, _, _ := f.raw(t, "GET "+path+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token\r\n\r\n", nil); code != http.StatusOK {
			t.Errorf("GET %s with the token: %d, want 200", path, code)
		}
	}
}

// A large unauthenticated body is refused from its headers: the answer comes before the
// client has sent any of the body, and the in-flight budget is untouched.
func TestAuthRefusesLargeBodyUnread(t *testing.T) {
	f := authListener(t, false)
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	head := "POST /k8s-audit HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n"
	if _, err := c.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf) // no body sent: only a refusal from the headers answers
	if err != nil {
		t.Fatalf("no answer before the body: %v", err)
	}
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 401") {
		t.Fatalf("answer %q, want 401", buf[:n])
	}
	if used := f.srv.budget.used.Load(); used != 0 {
		t.Errorf("in-flight budget holds %d bytes for a refused request", used)
	}
}

// The net/http side (the dedicated audit listener, the plain-HTTP probe port) checks the same
// credentials.
func TestAuthNetHTTPSide(t *testing.T) {
	f := authListener(t, false)
	mux := http.NewServeMux()
	mux.Handle("/k8s-audit", echoLength)
	hs := httptest.NewServer(f.srv.LimitBodies(mux))
	t.Cleanup(hs.Close)
	side := &fastListener{addr: strings.TrimPrefix(hs.URL, "http://"), m: f.m}
	if code, _, _ := side.raw(t, post("/k8s-audit", "Bearer wrong", "abc"), nil); code != http.StatusUnauthorized {
		t.Errorf("audit listener, wrong token: %d, want 401", code)
	}
	if code, body, _ := side.raw(t, post("/k8s-audit", "Bearer s3cret-token", "abc"), nil); code != http.StatusOK || body != "3" {
		t.Errorf("audit listener, token: %d %s", code, body)
	}
}
