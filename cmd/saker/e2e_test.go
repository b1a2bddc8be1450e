//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/testpeers"
)

// TestKubeAPIServerAuditWebhook is the seed scenario with real peers: etcd and a real
// kube-apiserver whose audit webhook (batch mode) posts to saker's /k8s-audit; creating a
// ConfigMap holding AWS credentials must reach the webhook output as Falco's rule
// "Create/Modify Configmap With Private Credentials". Run with `make e2e`.
func TestKubeAPIServerAuditWebhook(t *testing.T) {
	out := newSink(t, nil)
	d := start(t, "WEBHOOK_ADDRESS="+out.srv.URL+"/")
	k := auditedAPIServer(t, d.url)
	kubectl(t, k, nil, "create", "configmap", "aws-creds", "--from-literal", "aws_access_key_id=AKES20LNOA")

	alert := waitAlert(t, out, "Create/Modify Configmap With Private Credentials")
	if alert.Source != "k8s_audit" || alert.OutputFields["ka.req.configmap.name"] != "aws-creds" {
		t.Fatalf("alert fields: source %q, ka.req.configmap.name %v", alert.Source, alert.OutputFields["ka.req.configmap.name"])
	}
}

// TestKubeAPIServerServerSideApplyExtras: a privileged pod applied with
// `kubectl apply --server-side` (verb patch, response 201), which the upstream rules miss,
// raises "Create Privileged Pod" when saker runs with the extras pack (RULES_EXTRAS=true).
func TestKubeAPIServerServerSideApplyExtras(t *testing.T) {
	out := newSink(t, nil)
	d := start(t, "WEBHOOK_ADDRESS="+out.srv.URL+"/", "RULES_EXTRAS=true")
	k := auditedAPIServer(t, d.url)
	// Pods need the namespace's default service account, which the controller-manager
	// (not running here) would create.
	kubectl(t, k, nil, "create", "serviceaccount", "default")
	kubectl(t, k, strings.NewReader(`apiVersion: v1
kind: Pod
metadata: {name: ssa-privileged, namespace: default}
spec:
  containers:
    - {name: app, image: nginx:1.27, securityContext: {privileged: true}}
`), "apply", "--server-side", "-f", "-")

	alert := waitAlert(t, out, "Create Privileged Pod")
	if alert.OutputFields["ka.resp.name"] != "ssa-privileged" ||
		!strings.Contains(alert.Output, "pod=ssa-privileged") {
		t.Fatalf("alert: output %q, fields %v", alert.Output, alert.OutputFields)
	}
}

// auditedAPIServer starts etcd and kube-apiserver with an audit webhook (batch mode) posting
// to saker's /k8s-audit at sakerURL.
func auditedAPIServer(t *testing.T, sakerURL string) *testpeers.KubeAPIServer {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string { return testpeers.WriteFile(t, dir, name, content) }
	policy := write("policy.yaml", `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    verbs: [get, list, watch]
  - level: RequestResponse
    resources: [{group: "", resources: [configmaps, pods, services, serviceaccounts, secrets]}]
  - level: Metadata
`)
	webhook := write("webhook.kubeconfig", fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: saker
  cluster: {server: "%s/k8s-audit"}
contexts:
- name: default
  context: {cluster: saker, user: ""}
current-context: default
users: []
`, sakerURL))
	return testpeers.StartKubeAPIServer(t, "--audit-policy-file="+policy, "--audit-webhook-config-file="+webhook,
		"--audit-webhook-mode=batch", "--audit-webhook-batch-max-wait=1s")
}

// kubectl runs kubectl against k with stdin, failing the test on error.
func kubectl(t *testing.T, k *testpeers.KubeAPIServer, stdin *strings.Reader, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testpeers.Bin(t, "kubectl"), append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// e2eAlert is the part of a delivered alert the scenarios check.
type e2eAlert struct {
	Rule, Source, Output string
	OutputFields         map[string]any `json:"output_fields"`
}

// waitAlert returns the first alert of rule that reaches the webhook output within 60s.
func waitAlert(t *testing.T, out *sink, rule string) e2eAlert {
	t.Helper()
	until := time.After(60 * time.Second)
	for {
		select {
		case h := <-out.hits:
			var alert e2eAlert
			if err := json.Unmarshal(h.body, &alert); err != nil {
				t.Fatalf("webhook body is not an alert: %v: %s", err, h.body)
			}
			if alert.Rule == rule {
				return alert
			}
		case <-until:
			t.Fatalf("no %q alert reached the webhook output within 60s", rule)
		}
	}
}
