package kubeless

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

// hostIP is an address of this machine other than loopback: the API server refuses
// endpoints on 127.0.0.0/8, and proxies to the function's endpoint address.
func hostIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String()
		}
	}
	t.Fatal("no non-loopback IPv4 address to serve the function's endpoint on")
	return ""
}

// kubeRequest calls the test API server as its administrator.
func kubeRequest(t *testing.T, k *testpeers.KubeAPIServer, method, path string, body any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, k.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+k.Token)
	req.Header.Set("Content-Type", "application/json")
	if method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the test server's certificate
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return resp.StatusCode
}

// recordingFunction is function{} keeping the outputs of the events it accepted.
type recordingFunction struct {
	mu      sync.Mutex
	outputs []string
}

func (f *recordingFunction) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ev, status, msg := accept(r)
	if status != http.StatusOK {
		http.Error(w, msg, status)
		return
	}
	f.mu.Lock()
	f.outputs = append(f.outputs, ev.Output)
	f.mu.Unlock()
}

func (f *recordingFunction) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.outputs...)
}

// TestThroughAPIServerProxy: with kubeless.kubeconfig, events reach the function through a
// real kube-apiserver's service proxy; while the function is down the API server answers
// 503 and nothing is lost once it is up.
func TestThroughAPIServerProxy(t *testing.T) {
	if testing.Short() {
		if _, err := os.Stat(filepath.Join(testpeers.Dir(), "kube-apiserver")); err != nil {
			t.Skip("kube-apiserver not installed (.ci/install-peers.sh)")
		}
	}
	k := testpeers.StartKubeAPIServer(t)
	ip := hostIP(t)
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close() // down until the events are queued

	testpeers.Eventually(t, 30*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, k.URL+"/api/v1/namespaces/default", nil)
		req.Header.Set("Authorization", "Bearer "+k.Token)
		resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}).Do(req) //nolint:gosec // test
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "the API server's default namespace did not appear")
	kubeRequest(t, k, http.MethodPost, "/api/v1/namespaces", map[string]any{"metadata": map[string]any{"name": "kubeless"}})
	kubeRequest(t, k, http.MethodPost, "/api/v1/namespaces/kubeless/services", map[string]any{
		"metadata": map[string]any{"name": "falco-fn"},
		"spec":     map[string]any{"ports": []any{map[string]any{"name": "http", "port": 8080, "targetPort": port}}}})
	// The service proxy only sends to an endpoint address that is the IP of the pod it
	// names, so the function gets a pod (never run: there is no kubelet) with that IP.
	kubeRequest(t, k, http.MethodPost, "/api/v1/namespaces/kubeless/serviceaccounts", map[string]any{"metadata": map[string]any{"name": "default"}})
	kubeRequest(t, k, http.MethodPost, "/api/v1/namespaces/kubeless/pods", map[string]any{
		"metadata": map[string]any{"name": "falco-fn-0"},
		"spec": map[string]any{"automountServiceAccountToken": false,
			"containers": []any{map[string]any{"name": "fn", "image": "kubeless/falco-fn"}}}})
	kubeRequest(t, k, http.MethodPatch, "/api/v1/namespaces/kubeless/pods/falco-fn-0/status", map[string]any{
		"status": map[string]any{"phase": "Running", "podIP": ip, "podIPs": []any{map[string]any{"ip": ip}}}})
	target := map[string]any{"kind": "Pod", "namespace": "kubeless", "name": "falco-fn-0"}
	kubeRequest(t, k, http.MethodPost, "/api/v1/namespaces/kubeless/endpoints", map[string]any{
		"metadata": map[string]any{"name": "falco-fn"},
		"subsets": []any{map[string]any{"addresses": []any{map[string]any{"ip": ip, "targetRef": target}},
			"ports": []any{map[string]any{"name": "http", "port": port}}}}})
	kubeRequest(t, k, http.MethodPost, "/apis/discovery.k8s.io/v1/namespaces/kubeless/endpointslices", map[string]any{
		"metadata":    map[string]any{"name": "falco-fn-1", "labels": map[string]any{"kubernetes.io/service-name": "falco-fn"}},
		"addressType": "IPv4", "endpoints": []any{map[string]any{"addresses": []any{ip}, "conditions": map[string]any{"ready": true}, "targetRef": target}},
		"ports": []any{map[string]any{"name": "http", "port": port}}})

	c := recorded()
	c.Kubeconfig = k.Kubeconfig
	o, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	eng := deliverytest.Start(t, o, deliverytest.Policy(""))
	const n = 10
	for i := range n {
		deliverytest.Publish(t, eng, &event.Event{UUID: "id-" + strconv.Itoa(i), Rule: "r", Priority: event.Notice,
			Output: fmt.Sprintf("saker test event %02d", i), Time: time.Now(), Source: "syscall"})
	}
	deliverytest.WaitFailing(t, eng)

	fn := &recordingFunction{}
	if l, err = net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port))); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: fn, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	testpeers.Eventually(t, 30*time.Second, func() bool { return len(fn.got()) >= n }, "the function did not get all %d events", n)
	eng.Stop(time.Second)
	all := strings.Join(fn.got(), "\n")
	for i := range n {
		if c := strings.Count(all, fmt.Sprintf("saker test event %02d", i)); c != 1 {
			t.Errorf("event %02d reached the function %d times", i, c)
		}
	}
}
