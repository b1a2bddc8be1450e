//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/testpeers"
)

// TestKubeAPIServerAuditWebhook is the seed scenario with real peers: etcd and a real
// kube-apiserver whose audit webhook (batch mode) posts to saker's /k8s-audit; creating a
// ConfigMap holding AWS credentials must reach the webhook output as Falco's rule
// "Create/Modify Configmap With Private Credentials". Run with `make e2e`.
func TestKubeAPIServerAuditWebhook(t *testing.T) {
	kubectl := testpeers.Bin(t, "kubectl")

	out := newSink(t, nil)
	d := start(t, "WEBHOOK_ADDRESS="+out.srv.URL+"/")

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
`, d.url))
	k := testpeers.StartKubeAPIServer(t, "--audit-policy-file="+policy, "--audit-webhook-config-file="+webhook,
		"--audit-webhook-mode=batch", "--audit-webhook-batch-max-wait=1s")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", k.Kubeconfig, "create", "configmap", "aws-creds",
		"--from-literal", "aws_access_key_id=AKES20LNOA")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl create configmap: %v\n%s", err, b)
	}

	const rule = "Create/Modify Configmap With Private Credentials"
	until := time.After(60 * time.Second)
	for {
		select {
		case h := <-out.hits:
			var alert struct {
				Rule, Source string
				OutputFields map[string]any `json:"output_fields"`
			}
			if err := json.Unmarshal(h.body, &alert); err != nil {
				t.Fatalf("webhook body is not an alert: %v: %s", err, h.body)
			}
			if alert.Rule != rule {
				continue
			}
			if alert.Source != "k8s_audit" || alert.OutputFields["ka.req.configmap.name"] != "aws-creds" {
				t.Fatalf("alert fields: source %q, ka.req.configmap.name %v", alert.Source, alert.OutputFields["ka.req.configmap.name"])
			}
			return
		case <-until:
			t.Fatalf("no %q alert reached the webhook output within 60s", rule)
		}
	}
}
