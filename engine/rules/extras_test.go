package rules_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/audit"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/rules"
	"github.com/saker-dev/saker/internal/goldens"
)

// The extras pack on audit logs of a real kube-apiserver (testdata/k8s-audit-extras, made by
// its capture.sh): every trace is replayed with and without the pack, with rule matching
// first and all, and
//   - the alerts are exactly the reviewed golden files (expected/), output text included;
//   - the pack changes the alerts of no event outside the gaps it is meant to close
//     (TestExtrasChangeOnlyTheGaps);
//   - each gap gives the alert the issue asks for (TestExtrasGaps).

var extrasCorpus = goldens.Path("k8s-audit-extras")

// eventAlerts is the alerts of one audit event, and the event (its raw JSON).
type eventAlerts struct {
	raw    []byte
	alerts []*event.Event
}

// replayFile evaluates every line of an audit log and returns, per event, its alerts; the
// events are kept (copied) so the tests can look at what raised what.
func replayFile(t *testing.T, e *rules.Engine, path string) []eventAlerts {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var p audit.Parser
	ev := e.NewEvaluator()
	var out []eventAlerts
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := p.Parse(line, func(a *audit.Event) error {
			ea := eventAlerts{raw: bytes.Clone(a.Raw())}
			ev.Evaluate(a, func(al *event.Event) { ea.alerts = append(ea.alerts, al) })
			out = append(out, ea)
			return nil
		}, nil); err != nil && !errors.Is(err, audit.ErrNotAuditEvent) { // fal_01_003.json is not one, on purpose
			t.Fatalf("%s: %v", path, err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func loadEngine(t *testing.T, extras bool, m rules.Matching) *rules.Engine {
	t.Helper()
	files := []rules.File{rules.DefaultFile()}
	if extras {
		files = append(files, rules.ExtrasFile())
	}
	e, warnings, err := rules.Load(audit.NewSource(), files, rules.Options{Matching: m, Hostname: "HOSTNAME", Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	return e
}

func extrasTraces(t *testing.T) []string {
	return goldens.Glob(t, filepath.Join(extrasCorpus, "traces", "*.jsonl"))
}

var matchings = []rules.Matching{rules.MatchFirst, rules.MatchAll}

func TestExtrasTracesGolden(t *testing.T) {
	for _, trace := range extrasTraces(t) {
		if filepath.Base(trace) == "system-roles.jsonl" {
			continue // a part of the whole log, whose alerts are checked below; TestExtrasGaps checks its own
		}
		for _, m := range matchings {
			for _, extras := range []bool{false, true} {
				name := strings.TrimSuffix(filepath.Base(trace), ".jsonl") + "." + m.String()
				if extras {
					name += ".extras"
				}
				t.Run(name, func(t *testing.T) {
					var b []byte
					for _, ea := range replayFile(t, loadEngine(t, extras, m), trace) {
						for _, a := range ea.alerts {
							b = append(b, a.JSON()...)
							b = append(b, '\n')
						}
					}
					goldens.Check(t, filepath.Join(extrasCorpus, "expected", name+".jsonl"), b)
				})
			}
		}
	}
}

// auditMeta is what the tests read of an audit event, decoded with encoding/json so the
// classification does not depend on saker's own field extraction.
type auditMeta struct {
	Verb      string                    `json:"verb"`
	User      struct{ Username string } `json:"user"`
	ObjectRef struct {
		Resource, Subresource, Name, Namespace string
	} `json:"objectRef"`
	ResponseStatus struct{ Code int } `json:"responseStatus"`
}

func meta(t *testing.T, raw []byte) auditMeta {
	t.Helper()
	var m auditMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// The upstream rules whose alerts the pack may change, per gap.
var (
	ssaPodRules = map[string]bool{"Create Privileged Pod": true, "Create Sensitive Mount Pod": true,
		"Create HostNetwork Pod": true, "Create HostPid Pod": true, "Create HostIPC Pod": true}
	ephemeralRules = map[string]bool{"EphemeralContainers Created": true, "EphemeralContainers Created (Pod Spec)": true}
)

// gapRules returns the rules whose alerts the pack may add (added) or remove (removed) for
// an event, by what the event is; nil for an event the pack must leave alone.
func gapRules(m auditMeta) (added, removed map[string]bool) {
	r := m.ObjectRef
	switch {
	case m.Verb == "patch" && (m.ResponseStatus.Code == 200 || m.ResponseStatus.Code == 201) &&
		r.Resource == "pods" && r.Subresource == "":
		return ssaPodRules, nil
	case r.Resource == "pods" && r.Subresource == "ephemeralcontainers":
		return ephemeralRules, ephemeralRules
	case m.User.Username == "system:apiserver" && m.Verb == "create" &&
		(r.Resource == "clusterroles" || r.Resource == "roles") && strings.HasPrefix(r.Name, "system:"):
		return nil, map[string]bool{"System ClusterRole Modified/Deleted": true}
	}
	return nil, nil
}

// TestExtrasChangeOnlyTheGaps: event by event, the alerts with the pack are the alerts
// without it (same rules, same JSON), except on the events of a gap, where only that gap's
// rules may appear or disappear. With rule matching first, the order decides too: where the
// pack takes an alert away, the event raises the next rule it matches, which must be an
// alert upstream raises for it with matching all; where it adds one, a later rule's alert
// may give way.
func TestExtrasChangeOnlyTheGaps(t *testing.T) {
	traces := extrasTraces(t)
	traces = append(traces, goldens.Glob(t, filepath.Join(corpus, "traces", "*.json"))...)
	upstreamAll := loadEngine(t, false, rules.MatchAll)
	for _, m := range matchings {
		base, extras := loadEngine(t, false, m), loadEngine(t, true, m)
		for _, trace := range traces {
			t.Run(m.String()+"/"+filepath.Base(trace), func(t *testing.T) {
				without, with := replayFile(t, base, trace), replayFile(t, extras, trace)
				all := replayFile(t, upstreamAll, trace)
				if len(without) != len(with) {
					t.Fatalf("%d events without the pack, %d with", len(without), len(with))
				}
				for i := range with {
					was, is := alertSet(without[i].alerts), alertSet(with[i].alerts)
					if reflect.DeepEqual(was, is) {
						continue
					}
					ev := meta(t, with[i].raw)
					added, removed := gapRules(ev)
					tookAway, gave := false, false
					for a, rule := range was {
						if _, ok := is[a]; !ok && removed[rule] {
							tookAway = true
						}
					}
					for a, rule := range is {
						if _, ok := was[a]; !ok && added[rule] {
							gave = true
						}
					}
					upstream := alertSet(all[i].alerts)
					where := fmt.Sprintf("event %d (%s %s %s/%s %s)", i, ev.User.Username, ev.Verb, ev.ObjectRef.Resource, ev.ObjectRef.Subresource, ev.ObjectRef.Name)
					for a, rule := range is {
						_, fallThrough := upstream[a]
						if _, ok := was[a]; !ok && !added[rule] && !(m == rules.MatchFirst && tookAway && fallThrough) {
							t.Errorf("%s: the pack adds %s", where, a)
						}
					}
					for a, rule := range was {
						if _, ok := is[a]; !ok && !removed[rule] && !(m == rules.MatchFirst && gave) {
							t.Errorf("%s: the pack removes %s", where, a)
						}
					}
				}
			})
		}
	}
}

// alertSet maps each alert's Falco JSON to its rule.
func alertSet(alerts []*event.Event) map[string]string {
	s := map[string]string{}
	for _, a := range alerts {
		s[string(a.JSON())] = a.Rule
	}
	return s
}

// summary lists a trace's alerts as "rule: detail", detail being the output fields that
// tell the alerts of a gap apart; only the alerts of the given rules are listed.
func summary(t *testing.T, extras bool, trace string, ruleNames ...string) []string {
	t.Helper()
	var out []string
	for _, ea := range replayFile(t, loadEngine(t, extras, rules.MatchAll), filepath.Join(extrasCorpus, "traces", trace)) {
		for _, a := range ea.alerts {
			if !slices.Contains(ruleNames, a.Rule) {
				continue
			}
			f := a.OutputFields
			var detail string
			switch {
			case f["ka.resp.name"] != nil:
				detail = fmt.Sprint(f["ka.resp.name"])
			case f["ka.req.configmap.name"] != nil:
				detail = fmt.Sprint(f["ka.verb"], " ", f["ka.req.configmap.name"])
			case strings.HasPrefix(a.Rule, "EphemeralContainers"):
				_, detail, _ = strings.Cut(a.Output, "ephemeral_container_name=")
				detail = strings.TrimSuffix(detail, ")")
			default:
				detail = fmt.Sprint(f["ka.user.name"], " ", f["ka.verb"], " ", f["ka.target.name"])
			}
			out = append(out, a.Rule+": "+detail)
		}
	}
	return out
}

// TestExtrasGaps: on the real API server's requests, each gap of the issue gives, with the
// pack, the alert asked for, and without it what upstream Falco gives.
func TestExtrasGaps(t *testing.T) {
	podRules := []string{"Create Privileged Pod", "Create Sensitive Mount Pod", "Create HostNetwork Pod", "Create HostPid Pod", "Create HostIPC Pod"}
	ephemeral := []string{"EphemeralContainers Created", "EphemeralContainers Created (Pod Spec)"}
	const systemRole = "System ClusterRole Modified/Deleted"
	userChanges := []string{
		systemRole + ": admin create system:capture-test",
		systemRole + ": admin patch system:discovery",
		systemRole + ": admin delete system:heapster",
	}
	for _, c := range []struct {
		name, trace   string
		rules         []string
		with, without []string
	}{
		{"server-side apply of pods", "ssa-pods.jsonl", podRules,
			[]string{
				"Create Privileged Pod: ssa-privileged", // 201
				"Create HostNetwork Pod: ssa-hostnetwork",
				"Create HostPid Pod: ssa-hostpid",
				"Create HostIPC Pod: ssa-hostipc",
				"Create Sensitive Mount Pod: ssa-sensitive-mount",
				"Create Privileged Pod: ssa-privileged", // applied again with a label: 200
				// ssa-plain, and kubectl label (a patch without the spec): nothing
			}, nil},
		{"server-side apply of a ConfigMap with credentials (upstream already)", "ssa-configmap.jsonl",
			[]string{"Create/Modify Configmap With Private Credentials"},
			[]string{"Create/Modify Configmap With Private Credentials: patch ssa-aws-creds",
				"Create/Modify Configmap With Private Credentials: patch ssa-aws-creds"},
			[]string{"Create/Modify Configmap With Private Credentials: patch ssa-aws-creds",
				"Create/Modify Configmap With Private Credentials: patch ssa-aws-creds"}},
		{"kubectl debug (Kubernetes 1.23 and later)", "ephemeral-containers.jsonl", ephemeral,
			[]string{"EphemeralContainers Created (Pod Spec): (dbg) ephemeral_container_image=(busybox:1.36)",
				"EphemeralContainers Created (Pod Spec): (dbg2) ephemeral_container_image=(alpine:3.20)"},
			[]string{"EphemeralContainers Created: <NA> ephemeral_container_image=<NA>",
				"EphemeralContainers Created: <NA> ephemeral_container_image=<NA>"}},
		{"ephemeral container, pre-1.23 request", "ephemeral-containers-pre-1.23.jsonl", ephemeral,
			[]string{"EphemeralContainers Created: dbg ephemeral_container_image=busybox:1.36"},
			[]string{"EphemeralContainers Created: dbg ephemeral_container_image=busybox:1.36"}},
		{"system: roles: a user's changes, not the bootstrap", "system-roles.jsonl", []string{systemRole},
			userChanges, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := summary(t, true, c.trace, c.rules...); !reflect.DeepEqual(got, c.with) {
				t.Errorf("with the pack:\n got  %q\n want %q", got, c.with)
			}
			got := summary(t, false, c.trace, c.rules...)
			if c.without == nil { // spelled out below
				return
			}
			if !reflect.DeepEqual(got, c.without) {
				t.Errorf("without the pack:\n got  %q\n want %q", got, c.without)
			}
		})
	}
	if got := summary(t, false, "ssa-pods.jsonl", podRules...); len(got) != 0 {
		t.Errorf("without the pack, server-side apply of pods raises %q (upstream raises nothing)", got)
	}
	// Without the pack, the bootstrap's creates of system: ClusterRoles and Roles raise the
	// rule too: the noise the pack removes.
	got := summary(t, false, "system-roles.jsonl", systemRole)
	boot := 0
	for _, s := range got {
		if strings.HasPrefix(s, systemRole+": system:apiserver create system:") {
			boot++
		}
	}
	if boot < 60 || len(got) != boot+len(userChanges) || !reflect.DeepEqual(got[boot:], userChanges) {
		t.Errorf("without the pack: %d bootstrap creates, then %q; want 60 or more, then %q", boot, got[boot:], userChanges)
	}
}
