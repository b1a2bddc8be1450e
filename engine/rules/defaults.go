package rules

import _ "embed"

// defaultRules is Falco's upstream k8s_audit_rules.yaml (k8saudit plugin 0.18.0), unmodified;
// see defaults/NOTICE for its origin and license.
//
//go:embed defaults/k8s_audit_rules.yaml
var defaultRules []byte

// DefaultFileName is the name the embedded default rules file carries in messages.
const DefaultFileName = "k8s_audit_rules.yaml (embedded default)"

// DefaultFile returns the embedded upstream k8s_audit rules, to be loaded first so user files
// can append to and override them as they would in Falco.
func DefaultFile() File { return File{Name: DefaultFileName, Data: defaultRules} }
