package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// postAuth posts body to path with the Authorization header authz (none when empty).
func (d *daemon) postAuth(t *testing.T, path, authz, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
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
