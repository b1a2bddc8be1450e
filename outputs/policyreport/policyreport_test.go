package policyreport

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
	"github.com/saker-dev/saker/outputs/internal/kubeapi"
)

// admin reads and writes the test API server directly, to prepare it and to read the
// reports back.
type admin struct {
	t      testing.TB
	server string
	token  string
	hc     *http.Client
}

func newAdmin(t testing.TB, k *testpeers.KubeAPIServer) *admin {
	return &admin{t: t, server: k.URL, token: k.Token, hc: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}} //nolint:gosec // the test server's self-signed certificate
}

func (a *admin) do(method, path string, body any) (int, []byte) {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.server+path, r)
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// installCRDs applies testdata/policyreport-crd.yaml and waits until both kinds are served.
func (a *admin) installCRDs() {
	a.t.Helper()
	f, err := os.Open(filepath.Join("testdata", "policyreport-crd.yaml"))
	if err != nil {
		a.t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			a.t.Fatal(err)
		}
		if st, b := a.do(http.MethodPost, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", doc); st != http.StatusCreated {
			a.t.Fatalf("create CRD: %d %s", st, b)
		}
	}
	testpeers.Eventually(a.t, 30*time.Second, func() bool {
		st1, _ := a.do(http.MethodGet, "/apis/"+apiVersion+"/clusterpolicyreports", nil)
		st2, _ := a.do(http.MethodGet, "/apis/"+apiVersion+"/policyreports", nil)
		return st1 == http.StatusOK && st2 == http.StatusOK
	}, "the PolicyReport CRDs were not served")
}

func (a *admin) namespace(name string) {
	a.t.Helper()
	st, b := a.do(http.MethodPost, "/api/v1/namespaces", map[string]any{"metadata": map[string]any{"name": name}})
	if st != http.StatusCreated && st != http.StatusConflict {
		a.t.Fatalf("create namespace %s: %d %s", name, st, b)
	}
}

// report reads a report back (ns "" for the cluster report), nil when there is none.
func (a *admin) report(ns string) map[string]any {
	a.t.Helper()
	path := "/apis/" + apiVersion + "/clusterpolicyreports/" + clusterPolicyReportName
	if ns != "" {
		path = reportsPath(ns) + "/" + policyReportName
	}
	st, b := a.do(http.MethodGet, path, nil)
	if st == http.StatusNotFound {
		return nil
	}
	if st != http.StatusOK {
		a.t.Fatalf("GET %s: %d %s", path, st, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		a.t.Fatal(err)
	}
	return m
}

func (a *admin) deleteClusterReport() {
	a.t.Helper()
	a.do(http.MethodDelete, "/apis/"+apiVersion+"/clusterpolicyreports/"+clusterPolicyReportName, nil)
}

// messages lists a report's results' messages in order.
func messages(rep map[string]any) []string {
	var out []string
	results, _ := rep["results"].([]any)
	for _, r := range results {
		out = append(out, r.(map[string]any)["message"].(string))
	}
	return out
}

// stable drops what the API server sets (uid, resourceVersion, times) for golden files.
func stable(rep map[string]any) map[string]any {
	if rep == nil {
		return nil
	}
	meta := rep["metadata"].(map[string]any)
	for _, k := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"} {
		delete(meta, k)
	}
	return rep
}

// kubeconfig writes a kubeconfig for server with the admin token.
func kubeconfig(t testing.TB, server, token string, cluster string) string {
	return testpeers.WriteFile(t, t.TempDir(), "kubeconfig", fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, %s}
users:
- name: admin
  user: {token: %s}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, server, cluster, token))
}

func newOutput(t testing.TB, c *Config) *Output {
	t.Helper()
	c.Enabled = true
	o, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func send(t testing.TB, o *Output, evs ...*event.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := o.Send(context.Background(), ev); err != nil {
			t.Fatalf("send %q: %v", ev.Output, err)
		}
	}
}

// ev is an event of a namespace (ns "" for none).
func ev(output string, p event.Priority, ns string) *event.Event {
	f := map[string]any{"proc.name": "sh"}
	if ns != "" {
		f["k8s.ns.name"], f["k8s.pod.name"] = ns, "web-1"
	}
	return &event.Event{Output: output, Priority: p, Rule: "Rule " + output, Source: "syscall",
		Time: time.Date(2024, 5, 6, 12, 0, 0, 250, time.UTC), OutputFields: f}
}

// TestOnAPIServer runs the output against a real kube-apiserver (on etcd) with the
// PolicyReport CRDs installed, reading the reports back after each scenario.
func TestOnAPIServer(t *testing.T) {
	if testing.Short() {
		if _, err := os.Stat(filepath.Join(testpeers.Dir(), "kube-apiserver")); err != nil {
			t.Skip("kube-apiserver not installed (.ci/install-peers.sh)")
		}
	}
	k := testpeers.StartKubeAPIServer(t)
	a := newAdmin(t, k)
	insecure := kubeconfig(t, k.URL, k.Token, "insecure-skip-tls-verify: true")

	t.Run("WithoutTheCRD", func(t *testing.T) {
		err := newOutput(t, &Config{Kubeconfig: insecure, MaxEvents: 10}).Send(context.Background(), ev("x", event.Error, ""))
		if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "CRD") {
			t.Fatalf("want a permanent error naming the missing CRD, got %v", err)
		}
	})
	a.installCRDs()
	testpeers.Eventually(t, 30*time.Second, func() bool { st, _ := a.do(http.MethodGet, "/api/v1/namespaces/kube-system", nil); return st == 200 },
		"kube-system was not created")

	t.Run("Reports", func(t *testing.T) {
		a.deleteClusterReport()
		a.namespace("ns-a")
		a.namespace("fallback-ns")
		o := newOutput(t, &Config{Kubeconfig: insecure, MaxEvents: 1000, FalcoNamespace: "fallback-ns"})
		evs := goldens.Events(t, nil)
		for _, name := range goldens.Names(evs) {
			send(t, o, evs[name])
		}
		gone := ev("audit of a missing namespace", event.Critical, "")
		gone.OutputFields = map[string]any{"ka.target.namespace": "does-not-exist", "ka.target.resource": "configmaps", "ka.target.name": "cm-1"}
		send(t, o, ev("pod event", event.Warning, "ns-a"), gone)

		got := map[string]any{}
		for _, ns := range []string{"", "kube-system", "ns-a", "fallback-ns", "does-not-exist"} {
			got["report of namespace "+ns] = stable(a.report(ns))
		}
		cluster := got["report of namespace "].(map[string]any)
		if n := len(messages(cluster)); n != 7 {
			t.Errorf("cluster report: %d results, want the 7 events without a namespace", n)
		}
		if l := cluster["metadata"].(map[string]any)["labels"].(map[string]any); l[managedByLabel] != managedBy {
			t.Errorf("labels %v", l)
		}
		if m := messages(got["report of namespace ns-a"].(map[string]any)); len(m) != 1 || m[0] != "pod event" {
			t.Errorf("ns-a: %v", m)
		}
		fb := got["report of namespace fallback-ns"].(map[string]any)
		res := fb["results"].([]any)[0].(map[string]any)["resources"].([]any)[0].(map[string]any)
		if res["namespace"] != "fallback-ns" || res["kind"] != "ConfigMap" || res["name"] != "cm-1" {
			t.Errorf("fallback result's resource: %v", res)
		}
		if got["report of namespace does-not-exist"].(map[string]any) != nil {
			t.Error("a report appeared in a namespace that does not exist")
		}
		b, _ := json.Marshal(got)
		goldens.Check(t, filepath.Join("testdata", "reports.json"), goldens.IndentJSON(t, b))
	})

	t.Run("Pruning", func(t *testing.T) {
		seq := []event.Priority{event.Notice, event.Critical, event.Notice, event.Error, event.Warning}
		for _, tc := range []struct {
			byPriority bool
			want       string
		}{{false, "e2 e3 e4"}, {true, "e1 e3 e4"}} {
			ns := fmt.Sprintf("prune-%v", tc.byPriority)
			a.namespace(ns)
			o := newOutput(t, &Config{Kubeconfig: insecure, MaxEvents: 3, PruneByPriority: tc.byPriority})
			for i, p := range seq {
				send(t, o, ev(fmt.Sprintf("e%d", i), p, ns))
			}
			rep := a.report(ns)
			if got := strings.Join(messages(rep), " "); got != tc.want {
				t.Errorf("prunebypriority %v: kept %s, want %s", tc.byPriority, got, tc.want)
			}
			var s summary
			b, _ := json.Marshal(rep["summary"])
			_ = json.Unmarshal(b, &s)
			if want := summarize(decodeResults(t, rep)); s != want || s.Fail+s.Warn+s.Skip != 3 {
				t.Errorf("summary %+v, want %+v", s, want)
			}
		}
	})

	t.Run("ConflictIsRetried", func(t *testing.T) {
		// Another writer updates the report between the output's read and its write: the
		// output's write gets 409 Conflict and is redone; both results are kept.
		a.namespace("contended")
		send(t, newOutput(t, &Config{Kubeconfig: insecure, MaxEvents: 100}), ev("first", event.Error, "contended"))
		other := newOutput(t, &Config{Kubeconfig: insecure, MaxEvents: 100})
		var interfered atomic.Bool
		var conflicts atomic.Int32
		p := apiProxy(t, k, func(r *http.Request) {
			if r.Method == http.MethodPut && interfered.CompareAndSwap(false, true) {
				if err := other.Send(r.Context(), ev("other writer", event.Error, "contended")); err != nil {
					t.Error(err)
				}
			}
		}, func(status int) {
			if status == http.StatusConflict {
				conflicts.Add(1)
			}
		})
		send(t, newOutput(t, &Config{Kubeconfig: kubeconfig(t, p, k.Token, ""), MaxEvents: 100}), ev("through the proxy", event.Error, "contended"))
		if got := strings.Join(messages(a.report("contended")), ","); got != "first,other writer,through the proxy" || conflicts.Load() != 1 {
			t.Errorf("results %s after %d conflicts; want all three after 1", got, conflicts.Load())
		}
	})

	t.Run("ConcurrentWriters", func(t *testing.T) {
		// Two outputs (two replicas) and two workers of one write 30 events into the same
		// namespace's report and the cluster report at once: none is lost.
		a.namespace("busy")
		a.deleteClusterReport()
		o1 := newOutput(t, &Config{Kubeconfig: insecure, MaxEvents: 1000})
		o2 := newOutput(t, &Config{Kubeconfig: insecure, MaxEvents: 1000})
		var wg sync.WaitGroup
		for w, o := range []*Output{o1, o1, o2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					ns := "busy"
					if i%2 == 1 {
						ns = ""
					}
					if err := o.Send(context.Background(), ev(fmt.Sprintf("w%d-%d", w, i), event.Error, ns)); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		for _, ns := range []string{"busy", ""} {
			seen := map[string]bool{}
			for _, m := range messages(a.report(ns)) {
				seen[m] = true
			}
			if len(seen) != 15 || len(messages(a.report(ns))) != 15 {
				t.Errorf("report %q: %d results (%d distinct), want 15", ns, len(messages(a.report(ns))), len(seen))
			}
		}
	})

	t.Run("DownThenUpLosesNothing", func(t *testing.T) {
		// The API server is unreachable while 10 events are published; when it is back, the
		// first write's answer is lost on the way (the write happened): each event is in the
		// report once.
		a.namespace("dtu")
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		o := newOutput(t, &Config{Kubeconfig: kubeconfig(t, "http://"+addr, k.Token, ""), MaxEvents: 1000})
		eng := deliverytest.Start(t, o, deliverytest.Policy(""))
		for i := range 10 {
			deliverytest.Publish(t, eng, ev(fmt.Sprintf("saker test event %02d", i), event.Warning, "dtu"))
		}
		deliverytest.WaitFailing(t, eng)
		var lost atomic.Bool
		proxyAt(t, addr, k, nil, nil, func(resp *http.Response) error {
			if resp.Request.Method != http.MethodGet && resp.StatusCode/100 == 2 && lost.CompareAndSwap(false, true) {
				return errors.New("answer lost")
			}
			return nil
		})
		testpeers.Eventually(t, 30*time.Second, func() bool { return len(messages(a.report("dtu"))) >= 10 }, "not all events reached the report")
		eng.Stop(time.Second)
		got := messages(a.report("dtu"))
		for i := range 10 {
			want := fmt.Sprintf("saker test event %02d", i)
			n := 0
			for _, m := range got {
				if m == want {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s is in the report %d times", want, n)
			}
		}
		if !lost.Load() {
			t.Error("no answer was lost: the retry of a write that happened was not exercised")
		}
	})

	t.Run("InCluster", func(t *testing.T) {
		// In a pod: the API server from KUBERNETES_SERVICE_HOST/PORT, verified with the
		// service account's CA, the token file, and the pod's namespace as the fallback.
		dir := t.TempDir()
		ca, err := os.ReadFile(k.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		testpeers.WriteFile(t, dir, "ca.crt", string(ca))
		testpeers.WriteFile(t, dir, "token", k.Token+"\n")
		testpeers.WriteFile(t, dir, "namespace", "saker-ns")
		old := kubeapi.ServiceAccountDir
		kubeapi.ServiceAccountDir = dir
		t.Cleanup(func() { kubeapi.ServiceAccountDir = old })
		u, _ := url.Parse(k.URL)
		t.Setenv("KUBERNETES_SERVICE_HOST", u.Hostname())
		t.Setenv("KUBERNETES_SERVICE_PORT", u.Port())
		a.namespace("saker-ns")
		send(t, newOutput(t, &Config{Kubeconfig: "/nonexistent/is/not/read", MaxEvents: 10}), ev("from a pod", event.Critical, "no-such-ns"))
		if got := messages(a.report("saker-ns")); len(got) != 1 || got[0] != "from a pod" {
			t.Errorf("saker-ns report: %v", got)
		}
	})
}

func decodeResults(t testing.TB, rep map[string]any) []view {
	b, _ := json.Marshal(rep["results"])
	var rs []view
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// apiProxy is proxyAt on a new port; it returns its URL.
func apiProxy(t *testing.T, k *testpeers.KubeAPIServer, before func(*http.Request), status func(int)) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	proxyAt(t, addr, k, before, status, nil)
	return "http://" + addr
}

// proxyAt serves a reverse proxy to the API server on addr: before runs ahead of each
// request, status sees each answer's status, modify may drop an answer (the client then
// gets 502 although the request was carried out).
func proxyAt(t *testing.T, addr string, k *testpeers.KubeAPIServer, before func(*http.Request), status func(int), modify func(*http.Response) error) {
	target, _ := url.Parse(k.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the test server's certificate
	rp.ModifyResponse = func(resp *http.Response) error {
		if status != nil {
			status(resp.StatusCode)
		}
		if modify != nil {
			return modify(resp)
		}
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if before != nil {
			before(r)
		}
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// TestDeadline: a hung API server is abandoned when the attempt's context ends.
func TestDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := posttest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer close(release)
	o := newOutput(t, &Config{Kubeconfig: kubeconfig(t, srv.URL, "t", ""), MaxEvents: 10})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := o.Send(ctx, ev("x", event.Error, "ns"))
	if err == nil || delivery.IsPermanent(err) || time.Since(start) > 2*time.Second {
		t.Fatalf("want a transient error within the deadline, got %v after %v", err, time.Since(start))
	}
}

// TestMapping: falcosidekick's result, severity and subject mapping.
func TestMapping(t *testing.T) {
	for p, want := range map[event.Priority][2]string{
		event.Debug: {"skip", "info"}, event.Informational: {"skip", "info"}, event.Notice: {"skip", "low"},
		event.Warning: {"warn", "medium"}, event.Error: {"fail", "high"}, event.Critical: {"fail", "critical"},
		event.Alert: {"fail", "critical"}, event.Emergency: {"fail", "critical"},
	} {
		if r := newResult(&event.Event{Priority: p}); r.Result != want[0] || r.Severity != want[1] {
			t.Errorf("%v: %s/%s, want %v", p, r.Result, r.Severity, want)
		}
	}
	r := newResult(goldens.Events(t, nil)["k8s_audit_critical"])
	b, _ := json.Marshal(r)
	goldens.Check(t, filepath.Join("testdata", "result-k8s_audit_critical.json"), goldens.IndentJSON(t, b))
	if ns := namespaceOf(map[string]any{"k8s.ns.name": "<NA>", "ka.target.namespace": "audit-ns"}); ns != "audit-ns" {
		t.Errorf("namespace %q", ns)
	}
	if s := subjects(map[string]any{"ka.target.resource": "secrets", "ka.resp.name": "s1"}); len(s) != 1 || s[0].Kind != "Secret" || s[0].Name != "s1" {
		t.Errorf("subjects %+v", s)
	}
	if s := subjects(map[string]any{"ka.target.resource": "secrets"}); s != nil {
		t.Errorf("subjects without a name: %+v", s)
	}
}

func TestValidate(t *testing.T) {
	posttest.Refused(t, (&Config{Enabled: true}).Validate(), "policyreport.maxevents must be at least 1")
	posttest.Refused(t, (&Config{Enabled: true, MaxEvents: 1, FalcoNamespace: "Bad_NS"}).Validate(), "policyreport.falconamespace")
	if err := (&Config{}).Validate(); err != nil {
		t.Errorf("disabled: %v", err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := New(&Config{Enabled: true, MaxEvents: 1}, outputs.Env{}); err == nil || !strings.Contains(err.Error(), "policyreport.kubeconfig") {
		t.Errorf("no kubeconfig outside a pod: %v", err)
	}
}
