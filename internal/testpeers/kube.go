package testpeers

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// KubeAPIServer is a real kube-apiserver on etcd (no kubelet, no controller-manager) for the
// tests that need the API server itself: the audit webhook (make e2e) and server-side dry
// runs of the Helm chart.
type KubeAPIServer struct {
	URL        string // https://127.0.0.1:PORT, a self-signed certificate
	Token      string // bearer token of a system:masters user
	Kubeconfig string // a kubeconfig file for kubectl and helm with that token
	// CAFile holds the self-signed certificate the server generated, with the CA that
	// signed it, to verify the server as a client in a pod does (127.0.0.1 is among its
	// names).
	CAFile string
}

// StartKubeAPIServer starts etcd and kube-apiserver (both from Dir() or PATH) on free ports,
// with extra flags appended (e.g. --audit-webhook-config-file=...), waits until /readyz
// answers, and stops both when t ends.
func StartKubeAPIServer(t testing.TB, extra ...string) *KubeAPIServer {
	t.Helper()
	kapi, etcd := Bin(t, "kube-apiserver"), Bin(t, "etcd")
	dir := t.TempDir()
	write := func(name, content string) string { return WriteFile(t, dir, name, content) }
	const token = "test-admin-token"
	tokens := write("tokens.csv", token+",admin,1,\"system:masters\"\n")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saKey := write("sa.key", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))

	clientPort, peerPort, securePort := FreePort(t), FreePort(t), FreePort(t)
	Start(t, "etcd", []string{etcd, "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort)}, nil,
		func() bool { return PortOpen(clientPort) }, 30*time.Second)

	k := &KubeAPIServer{URL: fmt.Sprintf("https://127.0.0.1:%d", securePort), Token: token,
		CAFile: filepath.Join(dir, "certs", "apiserver.crt")}
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the test apiserver's self-signed certificate
	ready := func() bool {
		req, _ := http.NewRequest(http.MethodGet, k.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := insecure.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	Start(t, "kube-apiserver", append([]string{kapi,
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", clientPort), "--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", securePort), "--cert-dir=" + filepath.Join(dir, "certs"),
		"--service-account-key-file=" + saKey, "--service-account-signing-key-file=" + saKey,
		"--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.96.0.0/24",
		"--token-auth-file=" + tokens, "--authorization-mode=RBAC", "--allow-privileged=true"}, extra...), nil, ready, 90*time.Second)

	k.Kubeconfig = write("kubeconfig", fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %s}
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
`, k.URL, token))
	return k
}

// WriteFile writes content to dir/name (mode 0600: it may hold keys and tokens) and returns
// the path, failing the test on error.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
