package metrics

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCountEventCapsSeries(t *testing.T) {
	m := New(3)
	for i := 0; i < 10; i++ {
		m.CountEvent(EventLabels{Rule: fmt.Sprintf("rule %d", i), Priority: "5", PriorityRaw: "error", Source: "syscalls", Hostname: "h"})
	}
	m.CountEvent(EventLabels{Rule: "rule 0", Priority: "5", PriorityRaw: "error", Source: "syscalls", Hostname: "h"})
	if n := testutil.CollectAndCount(m.events); n != 4 {
		t.Errorf("%d series, want 3 plus the overflow one", n)
	}
	other := m.events.WithLabelValues(OverflowLabel, OverflowLabel, OverflowLabel, OverflowLabel, OverflowLabel, OverflowLabel, OverflowLabel)
	if got := testutil.ToFloat64(other); got != 7 {
		t.Errorf("_other = %v, want 7", got)
	}
	if got := testutil.ToFloat64(m.events.WithLabelValues("rule 0", "5", "error", "syscalls", "h", "", "")); got != 2 {
		t.Errorf("known series kept counting: %v", got)
	}
	if New(0).maxSeries != DefaultMaxEventSeries {
		t.Error("default cap")
	}
}

func TestHandlerServesFalcosidekickNames(t *testing.T) {
	m := New(0)
	m.Inputs.WithLabelValues("requests", "accepted").Inc()
	m.Outputs.WithLabelValues("slack", "ok").Inc()
	m.CountEvent(EventLabels{Rule: "r"})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, name := range []string{"falcosecurity_falcosidekick_inputs_total", "falcosecurity_falcosidekick_outputs_total",
		"falcosecurity_falcosidekick_falco_events_total", "go_goroutines", "process_"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}
