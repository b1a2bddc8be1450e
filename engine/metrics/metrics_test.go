package metrics

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

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
	body := scrape(t, m)
	for _, name := range []string{"falcosecurity_falcosidekick_inputs_total", "falcosecurity_falcosidekick_outputs_total",
		"falcosecurity_falcosidekick_falco_events_total", "go_goroutines", "process_"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func TestLongLabelValuesAreCapped(t *testing.T) {
	m := New(0)
	long := strings.Repeat("r", 300_000)
	for i := 0; i < 300; i++ {
		m.CountEvent(EventLabels{Rule: fmt.Sprintf("L%d-", i) + long, Priority: "5", Hostname: "h",
			OutputFields: map[string]any{"x": long}})
	}
	body := scrape(t, m)
	if len(body) > 1_000_000 {
		t.Fatalf("/metrics is %d bytes after 300 events with 300 KB rule names", len(body))
	}
	if n := testutil.CollectAndCount(m.events); n != 300 {
		t.Errorf("%d series: distinct long values must stay distinct", n)
	}
	if got := testutil.ToFloat64(m.truncated.WithLabelValues("rule")); got != 300 {
		t.Errorf("saker_label_values_truncated_total{label=rule} = %v, want 300", got)
	}
	if !strings.Contains(body, `rule="L7-rrrr`) {
		t.Error("the cut value lost its prefix")
	}
}

func TestCapLabelValue(t *testing.T) {
	short := "Write below binary dir"
	if capLabelValue(short) != short {
		t.Error("a short value changed")
	}
	a := capLabelValue(strings.Repeat("é", 400) + "a")
	b := capLabelValue(strings.Repeat("é", 400) + "b")
	for _, v := range []string{a, b} {
		if len(v) > MaxLabelValueLength || !utf8.ValidString(v) || !strings.HasPrefix(v, "ééé") || !strings.Contains(v, truncationMark) {
			t.Errorf("cut value %q (%d bytes)", v, len(v))
		}
	}
	if a == b {
		t.Error("two long values that differ only at the end were cut to the same value")
	}
	if v := capLabelValue("bad \xff byte"); !utf8.ValidString(v) || !strings.HasPrefix(v, "bad ") {
		t.Errorf("invalid UTF-8 gave %q", v)
	}
	m := New(0)
	m.CountEvent(EventLabels{Rule: "bad \xff byte"}) // Prometheus panics on invalid UTF-8 label values
	if got := testutil.ToFloat64(m.truncated.WithLabelValues("rule")); got != 1 {
		t.Errorf("truncated = %v", got)
	}
}

func TestExtraLabelsAsFalcosidekick(t *testing.T) {
	extra, warnings := EventExtraLabels(
		map[string]string{"env": "prod", "team.name": "sec", "bad-key": "x", "rule": "dup"},
		map[string]string{"ns.tpl": "{{ .x }}"},
		"proc.name, k8s.ns.name ,fd.num,,user.name")
	var names []string
	for _, x := range extra {
		names = append(names, x.Name)
	}
	if got := strings.Join(names, ","); got != "env,team_name,ns_tpl,proc_name,fd_num,user_name" {
		t.Errorf("extra labels %s", got)
	}
	joined := strings.Join(warnings, "\n")
	for _, want := range []string{`customfields key "bad-key" is not a valid Prometheus label name`,
		`customfields key "rule" gives label "rule", already a built-in label`,
		`prometheus.extralabels field "k8s.ns.name" gives label "k8s_ns_name", already a built-in label`} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
	m := NewWith(Options{ExtraLabels: extra})
	m.CountEvent(EventLabels{Rule: "r", Priority: "5", PriorityRaw: "error", Source: "syscalls", Hostname: "h",
		OutputFields: map[string]any{"env": "prod", "team.name": "sec", "ns.tpl": "kube", "proc.name": "bash", "fd.num": 3.0}})
	want := `falcosecurity_falcosidekick_falco_events_total{env="prod",fd_num="",hostname="h",k8s_ns_name="",k8s_pod_name="",ns_tpl="kube",priority="5",priority_raw="error",proc_name="bash",rule="r",source="syscalls",team_name="sec",user_name=""} 1`
	if body := scrape(t, m); !strings.Contains(body, want) {
		t.Errorf("/metrics lacks\n%s\nin\n%s", want, body)
	}
}
