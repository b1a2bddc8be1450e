package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/saker-dev/saker/internal/goldens"
)

// The extras pack is reachable from every entry point (rules.extras / RULES_EXTRAS,
// rules check --extras, replay --extras), and refused, naming the key, without the defaults
// it overrides.
func TestRulesExtrasEntryPoints(t *testing.T) {
	const packRule = "EphemeralContainers Created (Pod Spec)"
	code, stdout, stderr := run(t, nil, "rules", "check", "--extras")
	if code != 0 || !strings.Contains(stdout, packRule+" (k8s_audit_extras.yaml (embedded extras):") {
		t.Errorf("rules check --extras: exit %d, pack rule not listed:\n%s%s", code, stdout, stderr)
	}
	if _, stdout, _ := run(t, nil, "rules", "check"); strings.Contains(stdout, packRule) {
		t.Errorf("rules check without --extras lists the pack's rule:\n%s", stdout)
	}

	code, _, stderr = run(t, []string{"RULES_EXTRAS=true", "RULES_DEFAULTS=false", "RULES_FILES=/nonexistent.yaml"}, "config", "check")
	if code != 1 || !strings.Contains(stderr, "rules.extras needs rules.defaults") {
		t.Errorf("RULES_EXTRAS without the defaults: exit %d: %s", code, stderr)
	}
	code, stdout, stderr = run(t, []string{"RULES_EXTRAS=true"}, "config", "check")
	if code != 0 || !strings.Contains(stdout, "rules.extras: true") {
		t.Errorf("RULES_EXTRAS=true: exit %d:\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = run(t, nil, "replay", "--no-defaults", "--extras", "-r", "/nonexistent.yaml", "-")
	if code != 1 || !strings.Contains(stderr, "needs the defaults") {
		t.Errorf("replay --no-defaults --extras: exit %d: %s", code, stderr)
	}

	// A privileged pod applied server-side, as recorded from a real kube-apiserver.
	trace := goldens.Path("k8s-audit-extras", "traces", "ssa-pods.jsonl")
	if abs, err := filepath.Abs(trace); err == nil {
		trace = abs
	}
	const alert = `"rule":"Create Privileged Pod"`
	if code, stdout, stderr := run(t, nil, "replay", "--extras", trace); code != 0 || !strings.Contains(stdout, alert) {
		t.Errorf("replay --extras: exit %d, no %s:\n%s%s", code, alert, stdout, stderr)
	}
	if code, stdout, stderr := run(t, nil, "replay", trace); code != 0 || strings.Contains(stdout, alert) {
		t.Errorf("replay without --extras: exit %d, %s raised:\n%s%s", code, alert, stdout, stderr)
	}
}
