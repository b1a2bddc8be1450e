package rules_test

import (
	"path/filepath"
	"testing"

	"github.com/saker-dev/saker/engine/audit"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/rules"

	"github.com/saker-dev/saker/internal/goldens"
)

// The end-to-end correctness tests: the corpus traces parsed by engine/audit and evaluated by
// the rule engine must give Falco's alerts exactly (rules.TraceSuite, golden_traces_test.go).

// corpus is Falco's k8s-audit regression data in the repository's testdata.
var corpus = goldens.Path("k8s-audit")

func auditSuite() rules.TraceSuite {
	return rules.TraceSuite{Src: audit.NewSource(), Run: runAuditTrace}
}

// runAuditTrace feeds a trace file line by line (the --audit-log-path format) through
// audit.Parser, as saker replay does (replayFile, extras_test.go); lines that are not audit
// events yield nothing.
func runAuditTrace(t *testing.T, e *rules.Engine, trace string) []*event.Event {
	t.Helper()
	var out []*event.Event
	for _, ea := range replayFile(t, e, filepath.Join(corpus, "traces", trace)) {
		out = append(out, ea.alerts...)
	}
	return out
}

func TestTracesExpectedCounts(t *testing.T)      { auditSuite().ExpectedCounts(t) }
func TestTracesExpectedAlerts(t *testing.T)      { auditSuite().ExpectedAlerts(t) }
func TestTracesCasesWithExtraRules(t *testing.T) { auditSuite().CasesWithExtraRules(t) }

// With the extras pack loaded after the defaults, Falco's traces give Falco's results still.
func extrasSuite() rules.TraceSuite { ts := auditSuite(); ts.Extras = true; return ts }

func TestTracesExtrasExpectedCounts(t *testing.T)      { extrasSuite().ExpectedCounts(t) }
func TestTracesExtrasExpectedAlerts(t *testing.T)      { extrasSuite().ExpectedAlerts(t) }
func TestTracesExtrasCasesWithExtraRules(t *testing.T) { extrasSuite().CasesWithExtraRules(t) }
