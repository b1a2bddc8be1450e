package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/saker-dev/saker/internal/testpeers"
)

// writeAtomic replaces file with body by a rename, as a Kubernetes ConfigMap update does, so
// a reload never reads it half written.
func writeAtomic(t *testing.T, file, body string) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// TestReloadRules: a reload swaps the audit rules; a rule file with an error is refused with
// its reason (file and line) logged and answered, and the running rules keep alerting.
func TestReloadRules(t *testing.T) {
	s := newSink(t, nil)
	dir := t.TempDir()
	file, ruleFile := filepath.Join(dir, "saker.yaml"), filepath.Join(dir, "rules.yaml")
	rule := func(name string) string {
		return fmt.Sprintf("- rule: %s\n  desc: test\n  condition: ka.verb=create and ka.target.resource=configmaps\n"+
			"  output: \"%s %%ka.target.name\"\n  priority: WARNING\n  source: k8s_audit\n", name, name)
	}
	writeAtomic(t, ruleFile, rule("Configmap created v1"))
	writeAtomic(t, file, fmt.Sprintf("webhook:\n  address: %s\nrules:\n  defaults: false\n  files: [%s]\n", s.srv.URL, ruleFile))
	port := testpeers.FreePort(t)
	d := startWithArgs(t, fmt.Sprintf("http://127.0.0.1:%d/ping", port), []string{"-c", file},
		"LISTENADDRESS=127.0.0.1", fmt.Sprintf("LISTENPORT=%d", port))
	d.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	alertRule := func() string {
		t.Helper()
		if code, body := d.post(t, "/k8s-audit", auditEvent); code != http.StatusOK {
			t.Fatalf("POST /k8s-audit: %d %s", code, body)
		}
		var ev struct{ Rule string }
		if err := json.Unmarshal(s.next(t).body, &ev); err != nil {
			t.Fatal(err)
		}
		return ev.Rule
	}
	if got := alertRule(); got != "Configmap created v1" {
		t.Fatalf("alert of rule %q", got)
	}
	writeAtomic(t, ruleFile, rule("Configmap created v2")+"- rule: Broken\n  desc: x\n  condition: ka.verb=create and (\n  output: x\n  priority: INFO\n  source: k8s_audit\n")
	code, body := d.post(t, "/-/reload", "")
	if code != http.StatusBadRequest || !strings.Contains(body, "rules.yaml:9") {
		t.Fatalf("broken rule file: %d %s", code, body)
	}
	if !strings.Contains(d.stderr.String(), "configuration reload refused") || !strings.Contains(d.stderr.String(), "rules.yaml:9") {
		t.Errorf("the refused rule file's reason is not logged:\n%s", d.stderr.String())
	}
	if got := alertRule(); got != "Configmap created v1" {
		t.Fatalf("after a refused reload: alert of rule %q, want the running v1", got)
	}
	writeAtomic(t, ruleFile, rule("Configmap created v2"))
	if code, body := d.post(t, "/-/reload", ""); code != http.StatusOK {
		t.Fatalf("valid rule file: %d %s", code, body)
	}
	if got := alertRule(); got != "Configmap created v2" {
		t.Fatalf("after the reload: alert of rule %q, want v2", got)
	}
}
