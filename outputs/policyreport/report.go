package policyreport

import (
	"fmt"
	"maps"
	"slices"

	json "github.com/goccy/go-json"

	"github.com/saker-dev/saker/engine/event"
)

// result is a PolicyReportResult of wgpolicyk8s.io/v1alpha2 (Description is "message").
type result struct {
	Source     string            `json:"source,omitempty"`
	Policy     string            `json:"policy"`
	Rule       string            `json:"rule,omitempty"`
	Category   string            `json:"category,omitempty"`
	Severity   string            `json:"severity,omitempty"`
	Timestamp  timestamp         `json:"timestamp"`
	Result     string            `json:"result,omitempty"`
	Scored     bool              `json:"scored"`
	Resources  []objectReference `json:"resources,omitempty"`
	Selector   json.RawMessage   `json:"resourceSelector,omitempty"`
	Message    string            `json:"message,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

type timestamp struct {
	Seconds int64 `json:"seconds"`
	Nanos   int32 `json:"nanos"`
}

// objectReference is the part of a core/v1 ObjectReference the results name.
type objectReference struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name,omitempty"`
	UID        string `json:"uid,omitempty"`
}

type summary struct {
	Pass  int `json:"pass,omitempty"`
	Fail  int `json:"fail,omitempty"`
	Warn  int `json:"warn,omitempty"`
	Error int `json:"error,omitempty"`
	Skip  int `json:"skip,omitempty"`
}

// view is what saker reads of a result: enough to prune, count and recognise it.
type view struct {
	Policy    string    `json:"policy"`
	Rule      string    `json:"rule"`
	Severity  string    `json:"severity"`
	Result    string    `json:"result"`
	Message   string    `json:"message"`
	Timestamp timestamp `json:"timestamp"`
}

// kept is a result of the report: its bytes as read, written back unchanged (a report holds
// up to maxevents results and is rewritten for every event, so they are not decoded and
// encoded again), and its view. goccy/go-json decodes the report in about half the CPU
// time of encoding/json (2.8 against 5 ms per event with 100 results).
type kept struct {
	raw json.RawMessage
	view
}

// report is a PolicyReport or ClusterPolicyReport. Fields saker does not set (metadata
// with its resourceVersion, scope) are kept as they were read and written back unchanged.
type report struct {
	raw     map[string]json.RawMessage
	results []kept
}

func (r *report) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &r.raw); err != nil {
		return err
	}
	var raws []json.RawMessage
	if v, ok := r.raw["results"]; ok {
		if err := json.Unmarshal(v, &raws); err != nil {
			return fmt.Errorf("results: %w", err)
		}
	}
	r.results = make([]kept, len(raws), len(raws)+1)
	for i, raw := range raws {
		r.results[i].raw = raw
		if err := json.Unmarshal(raw, &r.results[i].view); err != nil {
			return fmt.Errorf("result %d: %w", i, err)
		}
	}
	return nil
}

// add appends x.
func (r *report) add(x result) error {
	raw, err := json.Marshal(x)
	if err != nil {
		return err
	}
	r.results = append(r.results, kept{raw: raw, view: view{Policy: x.Policy, Rule: x.Rule, Severity: x.Severity,
		Result: x.Result, Message: x.Message, Timestamp: x.Timestamp}})
	return nil
}

// marshal writes the report with its results and their summary. The other fields' bytes
// came from the API server and go back as they are.
func (r *report) marshal() ([]byte, error) {
	views := make([]view, len(r.results))
	size := 64
	for i, k := range r.results {
		views[i] = k.view
		size += len(k.raw) + 1
	}
	for _, v := range r.raw {
		size += len(v) + 32
	}
	sum, err := json.Marshal(summarize(views))
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, size)
	b = append(b, '{')
	for _, k := range slices.Sorted(maps.Keys(r.raw)) {
		if k == "results" || k == "summary" {
			continue
		}
		name, _ := json.Marshal(k)
		b = append(append(append(b, name...), ':'), r.raw[k]...)
		b = append(b, ',')
	}
	b = append(b, `"results":[`...)
	for i, k := range r.results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, k.raw...)
	}
	b = append(b, `],"summary":`...)
	b = append(b, sum...)
	return append(b, '}'), nil
}

// newReport is an empty report labelled as falcosidekick labels its reports.
func newReport(kind, name, ns string) report {
	meta := map[string]any{"name": name, "labels": map[string]string{managedByLabel: managedBy}}
	if ns != "" {
		meta["namespace"] = ns
	}
	m, _ := json.Marshal(meta)
	return report{raw: map[string]json.RawMessage{
		"apiVersion": json.RawMessage(`"` + apiVersion + `"`),
		"kind":       json.RawMessage(`"` + kind + `"`),
		"metadata":   m,
	}}
}

// has reports whether the report already holds x: a retried write whose first attempt
// succeeded but whose answer was lost must not add the result twice.
func (r *report) has(x result) bool {
	for _, k := range r.results {
		if k.Timestamp != x.Timestamp || k.Policy != x.Policy || k.Rule != x.Rule || k.Message != x.Message {
			continue
		}
		var p struct {
			Properties map[string]string `json:"properties"`
		}
		if json.Unmarshal(k.raw, &p) == nil && maps.Equal(p.Properties, x.Properties) {
			return true
		}
	}
	return false
}

// The k8saudit resources falcosidekick names in results.
var resourceKinds = map[string][2]string{ // resource: apiVersion, kind
	"pods": {"v1", "Pod"}, "services": {"v1", "Service"}, "secrets": {"v1", "Secret"},
	"configmaps": {"v1", "ConfigMap"}, "namespaces": {"v1", "Namespace"}, "serviceaccounts": {"v1", "ServiceAccount"},
	"daemonsets": {"apps/v1", "DaemonSet"}, "deployments": {"apps/v1", "Deployment"},
	"statefulsets": {"apps/v1", "StatefulSet"}, "cronjobs": {"batch/v1", "CronJob"}, "jobs": {"batch/v1", "Job"},
	"clusterroles":        {"rbac.authorization.k8s.io/v1", "ClusterRole"},
	"clusterrolebindings": {"rbac.authorization.k8s.io/v1", "ClusterRoleBinding"},
	"roles":               {"rbac.authorization.k8s.io/v1", "Role"}, "rolebindings": {"rbac.authorization.k8s.io/v1", "RoleBinding"},
}

// newResult maps an event as falcosidekick does: policy the event's source, rule its rule,
// message its output, properties its output fields as text; result skip up to Notice, warn
// for Warning, fail above; severity info, low (Notice), medium (Warning), high (Error),
// critical above. The timestamp is the event's time (falcosidekick put only the seconds of
// the minute there).
func newResult(ev *event.Event) result {
	props := make(map[string]string, len(ev.OutputFields))
	for k, v := range ev.OutputFields {
		props[k] = event.FieldText(v)
	}
	return result{
		Policy: ev.Source, Rule: ev.Rule, Category: "SI - System and Information Integrity", Source: "Falco",
		Timestamp: timestamp{Seconds: ev.Time.Unix(), Nanos: int32(ev.Time.Nanosecond())}, //nolint:gosec // below 1e9
		Severity:  severityOf(ev.Priority), Result: resultOf(ev.Priority),
		Message: ev.Output, Properties: props, Resources: subjects(ev.OutputFields),
	}
}

func resultOf(p event.Priority) string {
	switch {
	case p <= event.Notice:
		return "skip"
	case p == event.Warning:
		return "warn"
	}
	return "fail"
}

// severities from least to most severe.
var severities = []string{"info", "low", "medium", "high", "critical"}

func severityOf(p event.Priority) string {
	switch {
	case p <= event.Informational:
		return "info"
	case p == event.Notice:
		return "low"
	case p == event.Warning:
		return "medium"
	case p == event.Error:
		return "high"
	}
	return "critical"
}

// subjects names the pod (k8s.pod.name) or the audited object (ka.target.resource with
// ka.target.name or ka.resp.name) the result is about; none when the fields do not say.
func subjects(fields map[string]any) []objectReference {
	text := func(k string) string {
		if v, ok := fields[k]; ok && v != nil {
			if s := event.FieldText(v); s != "<NA>" {
				return s
			}
		}
		return ""
	}
	name, resource := text("k8s.pod.name"), "pods"
	if name == "" {
		resource = text("ka.target.resource")
		if name = text("ka.target.name"); name == "" {
			name = text("ka.resp.name")
		}
	}
	if name == "" || resource == "" {
		return nil
	}
	kind := resourceKinds[resource]
	return []objectReference{{Namespace: namespaceOf(fields), Name: name, APIVersion: kind[0], Kind: kind[1]}}
}

// prune drops results beyond max: the oldest, or with byPriority the oldest of the least
// severe present.
func prune(rs []kept, max int, byPriority bool) []kept {
	for len(rs) > max {
		drop := 0
		if byPriority {
			least := len(severities)
			for i, r := range rs {
				if s := slices.Index(severities, r.Severity); s >= 0 && s < least {
					least, drop = s, i
				}
			}
		}
		rs = slices.Delete(rs, drop, drop+1)
	}
	return rs
}

// summarize counts the results by outcome.
func summarize(rs []view) summary {
	var s summary
	for _, r := range rs {
		switch r.Result {
		case "pass":
			s.Pass++
		case "fail":
			s.Fail++
		case "warn":
			s.Warn++
		case "error":
			s.Error++
		case "skip":
			s.Skip++
		}
	}
	return s
}
