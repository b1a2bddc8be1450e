package rules

import _ "embed"

// defaultRules is Falco's upstream k8s_audit_rules.yaml (k8saudit plugin 0.18.0), unmodified;
// see defaults/NOTICE for its origin and license.
//
//go:embed defaults/k8s_audit_rules.yaml
var defaultRules []byte

// extrasRules is saker's optional rules pack (docs/rules-extras.md). It is Falco rule
// language only, written to be loaded after defaultRules, so the upstream file stays as
// published and a user can load the same pack into Falco.
//
//go:embed extras/k8s_audit_extras.yaml
var extrasRules []byte

// DefaultFileName is the name the embedded default rules file carries in messages.
const DefaultFileName = "k8s_audit_rules.yaml (embedded default)"

// ExtrasFileName is the name the embedded extras pack carries in messages.
const ExtrasFileName = "k8s_audit_extras.yaml (embedded extras)"

// DefaultFile returns the embedded upstream k8s_audit rules, to be loaded first so user files
// can append to and override them as they would in Falco.
func DefaultFile() File { return File{Name: DefaultFileName, Data: defaultRules} }

// ExtrasFile returns the embedded extras pack. It overrides upstream rules, so it must be
// loaded right after DefaultFile (and before user files, which may then override it too).
func ExtrasFile() File { return File{Name: ExtrasFileName, Data: extrasRules} }
