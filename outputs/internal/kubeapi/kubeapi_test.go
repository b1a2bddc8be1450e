package kubeapi

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

// TestKubeconfigTLSAndCertificate: a kubeconfig with a CA file relative to it and an inline
// client certificate reaches a server that requires that client certificate.
func TestKubeconfigTLSAndCertificate(t *testing.T) {
	pki := testpeers.NewPKI(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "client certificate only", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"kind":"Namespace"}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.ServerCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.Pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cert, _ := os.ReadFile(pki.ClientCertFile)
	key, _ := os.ReadFile(pki.ClientKeyFile)
	ca, _ := os.ReadFile(pki.CAFile)
	dir := t.TempDir()
	testpeers.WriteFile(t, dir, "ca.pem", string(ca))
	path := testpeers.WriteFile(t, dir, "config", `apiVersion: v1
kind: Config
current-context: c
contexts:
- {name: c, context: {cluster: k, user: u, namespace: team}}
clusters:
- {name: k, cluster: {server: "`+srv.URL+`/", certificate-authority: ca.pem}}
users:
- name: u
  user:
    client-certificate-data: `+base64.StdEncoding.EncodeToString(cert)+`
    client-key-data: `+base64.StdEncoding.EncodeToString(key)+`
`)
	cfg, err := FromKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "team" || strings.HasSuffix(cfg.Server, "/") {
		t.Errorf("namespace %q, server %q", cfg.Namespace, cfg.Server)
	}
	c, err := New(cfg, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(context.Background(), Request{Path: "/api/v1/namespaces/team"})
	if err != nil || resp.Status != http.StatusOK {
		t.Fatalf("GET: %v %v", resp, err)
	}
}

// TestTokenFileIsReread: a token file's new content is used once the cached one is old.
func TestTokenFileIsReread(t *testing.T) {
	var got []string // requests are sequential
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = append(got, r.Header.Get("Authorization")) }))
	t.Cleanup(srv.Close)
	s := srv.URL
	dir := t.TempDir()
	tok := testpeers.WriteFile(t, dir, "token", "one\n")
	path := testpeers.WriteFile(t, dir, "config", `current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "`+s+`"}}]
users: [{name: u, user: {tokenFile: token}}]
`)
	cfg, err := FromKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := New(cfg, outputs.Env{})
	do := func() {
		if _, err := c.Do(context.Background(), Request{Path: "/api"}); err != nil {
			t.Fatal(err)
		}
	}
	do()
	if err := os.WriteFile(tok, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	do()
	c.readAt = c.readAt.Add(-2 * tokenMaxAge)
	do()
	if strings.Join(got, ",") != "Bearer one,Bearer one,Bearer two" {
		t.Errorf("Authorization headers: %v", got)
	}
}

// TestKubeconfigErrors: what cannot be used is refused, naming the file and the part.
func TestKubeconfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ config, want string }{
		"no current context": {`clusters: []`, "no current-context"},
		"unknown context":    {`current-context: x`, `current-context "x" is not among its contexts`},
		"unknown cluster":    {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]", `names cluster "k", which is not defined`},
		"exec plugin": {`current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://k:6443"}}]
users: [{name: u, user: {exec: {command: aws}}}]`, "exec and auth-provider credentials are not supported"},
		"bad server": {`current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "k:6443"}}]`, "server: missing scheme"},
		"bad CA data": {`current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://k:6443", certificate-authority-data: "!!"}}]`, "not base64"},
	} {
		p := testpeers.WriteFile(t, dir, strings.ReplaceAll(name, " ", "-"), tc.config)
		if _, err := FromKubeconfig(p); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want an error naming %s and saying %q", name, err, p, tc.want)
		}
	}
	if _, err := FromKubeconfig(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing kubeconfig was accepted")
	}
}

func TestExpandHome(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	if got := ExpandHome("~/.kube/config"); got != "/home/u/.kube/config" {
		t.Errorf("ExpandHome = %s", got)
	}
	if got := ExpandHome("/etc/kube"); got != "/etc/kube" {
		t.Errorf("ExpandHome = %s", got)
	}
}
