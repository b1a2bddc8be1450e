package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/testpeers"
)

const auditEvent = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"0b6e9a47-1c1d-4b53-9a55-4c3f3c2c0001","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/configmaps","verb":"create","user":{"username":"admin","groups":["system:masters"]},"sourceIPs":["10.0.0.1"],"objectRef":{"resource":"configmaps","namespace":"default","name":"aws-creds","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"aws-creds","namespace":"default"},"data":{"aws_access_key_id":"AKIAEXAMPLE"}},"requestReceivedTimestamp":"2024-01-01T00:00:00.000000Z","stageTimestamp":"2024-01-01T00:00:00.100000Z"}`

func postAudit(c *http.Client, url string) (int, string, error) {
	resp, err := c.Post(url, "application/json", strings.NewReader(auditEvent))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestAuditListenerEnforcesMutualTLS(t *testing.T) {
	pki := testpeers.NewPKI(t)
	mainPort, auditPort, plainPort := testpeers.FreePort(t), testpeers.FreePort(t), testpeers.FreePort(t)
	startWithProbe(t, fmt.Sprintf("http://127.0.0.1:%d/ping", plainPort),
		"LISTENADDRESS=127.0.0.1", fmt.Sprintf("LISTENPORT=%d", mainPort),
		"TLSSERVER_DEPLOY=true", "TLSSERVER_MUTUALTLS=true", "TLSSERVER_CERTFILE="+pki.ServerCertFile,
		"TLSSERVER_KEYFILE="+pki.ServerKeyFile, "TLSSERVER_CACERTFILE="+pki.CAFile, fmt.Sprintf("TLSSERVER_NOTLSPORT=%d", plainPort),
		"K8SAUDIT_LISTENADDRESS=127.0.0.1", fmt.Sprintf("K8SAUDIT_LISTENPORT=%d", auditPort))
	auditURL := fmt.Sprintf("https://127.0.0.1:%d/k8s-audit", auditPort)

	// Plain HTTP gets a 400 that says why.
	status, body, err := postAudit(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/k8s-audit", auditPort))
	if err != nil || status != 400 || !strings.Contains(body, "HTTPS only") {
		t.Errorf("plain HTTP to the audit listener: %d %q %v", status, body, err)
	}
	// TLS without a client certificate does not get through the handshake.
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}}}
	if status, body, err := postAudit(noCert, auditURL); err == nil {
		t.Errorf("TLS without a client certificate: %d %s", status, body)
	}
	// With a certificate signed by tlsserver.cacertfile, audit events are taken.
	withCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool,
		Certificates: []tls.Certificate{pki.ClientCert}}}}
	status, body, err = postAudit(withCert, auditURL)
	if err != nil || status != 200 || !strings.Contains(body, `"events":1`) {
		t.Errorf("TLS with a client certificate: %d %s %v", status, body, err)
	}
	// The main listener holds the same rule; the plain side port serves only its paths.
	if status, _, err := postAudit(noCert, fmt.Sprintf("https://127.0.0.1:%d/k8s-audit", mainPort)); err == nil {
		t.Errorf("main listener without a client certificate: %d", status)
	}
	if status, _, _ := postAudit(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/k8s-audit", plainPort)); status != 404 {
		t.Errorf("/k8s-audit on the plain side port: %d, want 404", status)
	}
}

func TestAuditListenerCertWithoutClientCAIsReported(t *testing.T) {
	pki := testpeers.NewPKI(t)
	env := []string{"K8SAUDIT_LISTENPORT=18443", "K8SAUDIT_CERTFILE=" + pki.ServerCertFile, "K8SAUDIT_KEYFILE=" + pki.ServerKeyFile}
	code, _, stderr := run(t, env, "config", "check")
	if code != 0 || !strings.Contains(stderr, "k8saudit.certfile is set without a client CA") {
		t.Errorf("config check: exit %d, stderr:\n%s", code, stderr)
	}
	// With k8saudit.cacertfile the warning goes...
	if _, _, stderr := run(t, append(env, "K8SAUDIT_CACERTFILE="+pki.CAFile), "config", "check"); strings.Contains(stderr, "without a client CA") {
		t.Errorf("warned with k8saudit.cacertfile set:\n%s", stderr)
	}
	// ...and a client CA without any TLS on the audit listener is an error.
	code, _, stderr = run(t, []string{"K8SAUDIT_LISTENPORT=18443", "K8SAUDIT_CACERTFILE=" + pki.CAFile}, "config", "check")
	if code != 1 || !strings.Contains(stderr, "k8saudit.cacertfile needs TLS on the audit listener") {
		t.Errorf("client CA without TLS: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestNoTLSPortOpensOnlyWhenAsked(t *testing.T) {
	cases := []struct {
		env  []string
		want bool
	}{
		{[]string{"TLSSERVER_DEPLOY=true"}, false}, // TLS alone opens no plain port
		{[]string{"TLSSERVER_DEPLOY=true", "TLSSERVER_NOTLSPORT=2811"}, true},
		{[]string{"TLSSERVER_DEPLOY=true", "TLSSERVER_NOTLSPORT=2810"}, true}, // set, even to the default
		{[]string{"TLSSERVER_DEPLOY=true", "TLSSERVER_NOTLSPATHS=/ping,/healthz"}, true},
		{[]string{"TLSSERVER_DEPLOY=true", "TLSSERVER_NOTLSPORT=0"}, false},
		{[]string{"TLSSERVER_NOTLSPORT=2811"}, false}, // no TLS: everything is plain already
	}
	for _, c := range cases {
		lc, err := loadConfig(&globalFlags{set: map[string]string{}}, c.env)
		if err != nil {
			t.Fatalf("%v: %v", c.env, err)
		}
		if got := lc.opensNoTLSPort(); got != c.want {
			t.Errorf("%v: plain port opens = %v, want %v", c.env, got, c.want)
		}
	}
	// A falcosidekick file that names them, as its config_example.yaml does, opens the port.
	file := filepath.Join(t.TempDir(), "config.yaml")
	yaml := "tlsserver:\n  deploy: true\n  notlsport: 2810\n  notlspaths:\n    - \"/ping\"\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if lc, err := loadConfig(&globalFlags{configFile: file, set: map[string]string{}}, nil); err != nil || !lc.opensNoTLSPort() {
		t.Errorf("falcosidekick-style file: plain port does not open (err %v)", err)
	}
	lc, _ := loadConfig(&globalFlags{set: map[string]string{}}, nil)
	if ts := lc.global.TLSServer; ts.NoTLSPort != 2810 || strings.Join(ts.NoTLSPaths, ",") != "/ping" {
		t.Errorf("defaults notlsport %d notlspaths %v, want falcosidekick's 2810 [/ping]", ts.NoTLSPort, ts.NoTLSPaths)
	}
}

func TestFalcoEventsLabelsFromFields(t *testing.T) {
	d := start(t, "CUSTOMFIELDS=env:prod", "TEMPLATEDFIELDS=cmd:{{ index . \"proc.cmdline\" }}", "PROMETHEUS_EXTRALABELS=user.name,fd.name")
	d.mustPost(t, falcoEvent)
	resp, err := http.Get(d.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	want := `cmd="touch /bin/hack",env="prod",fd_name="/bin/hack",hostname="localhost"`
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "falcosecurity_falcosidekick_falco_events_total{") {
			line = l
		}
	}
	if !strings.Contains(line, want) || !strings.Contains(line, `user_name="root"`) {
		t.Errorf("falco_events_total: %s\nwant labels %s and user_name", line, want)
	}
}
