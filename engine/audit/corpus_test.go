package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/rules"
)

// genCorpus returns n JSONL audit events made from the shared traces with varied users,
// namespaces, verbs, images, IDs and timestamps, the way the acceptance check's corpus.py
// does (plus verbs). It is deterministic for a given n.
func genCorpus(tb testing.TB, n int) [][]byte {
	tb.Helper()
	var base []map[string]any
	for _, path := range traceFiles(tb) {
		for _, line := range traceLines(tb, path) {
			var m map[string]any
			if json.Unmarshal(line, &m) == nil && m["kind"] == "Event" {
				base = append(base, m)
			}
		}
	}
	if len(base) == 0 {
		tb.Fatal("no audit events in the k8s-audit traces")
	}
	rnd := rand.New(rand.NewPCG(7, 7))
	users := []string{"minikube-user", "system:serviceaccount:kube-system:deployment-controller", "alice", "bob",
		"system:kube-scheduler", "admin", "ci-bot", "system:anonymous"}
	nss := []string{"default", "kube-system", "prod", "payments", "dev", "kube-public"}
	images := []string{"nginx:1.25", "busybox", "registry.local:5000/app:v2", "falcosecurity/falco:0.38", "redis@sha256:abc"}
	verbs := []string{"create", "update", "patch", "delete", "get", "list"}
	out := make([][]byte, n)
	for i := range out {
		var e map[string]any
		b, _ := json.Marshal(base[rnd.IntN(len(base))])
		_ = json.Unmarshal(b, &e) // deep copy
		e["auditID"] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		if rnd.Float64() < 0.6 {
			if u, ok := e["user"].(map[string]any); ok {
				u["username"] = users[rnd.IntN(len(users))]
			}
		}
		if rnd.Float64() < 0.2 {
			e["verb"] = verbs[rnd.IntN(len(verbs))]
		}
		if ref, ok := e["objectRef"].(map[string]any); ok && ref["namespace"] != nil && rnd.Float64() < 0.5 {
			ref["namespace"] = nss[rnd.IntN(len(nss))]
		}
		if ro, ok := e["requestObject"].(map[string]any); ok {
			if spec, ok := ro["spec"].(map[string]any); ok {
				if cs, ok := spec["containers"].([]any); ok {
					for _, c := range cs {
						if c, ok := c.(map[string]any); ok && rnd.Float64() < 0.5 {
							c["image"] = images[rnd.IntN(len(images))]
						}
					}
				}
			}
		}
		e["stageTimestamp"] = fmt.Sprintf("2026-11-%02dT%02d:%02d:%02d.%06dZ", 1+i%28, i%24, i%60, (i/60)%60, i%1000000)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(e)
		out[i] = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	return out
}

var (
	corpusOnce sync.Once
	corpus     [][]byte
)

// benchCorpus is the 100,000-event corpus shared by the benchmarks.
func benchCorpus(b *testing.B) [][]byte {
	corpusOnce.Do(func() { corpus = genCorpus(b, 100_000) })
	if corpus == nil {
		b.Fatal("the benchmark corpus could not be generated (see the first failure)")
	}
	return corpus
}

func corpusBytes(lines [][]byte) int64 {
	var n int64
	for _, l := range lines {
		n += int64(len(l)) + 1
	}
	return n
}

// BenchmarkParse measures validating and indexing one JSONL line, the per-event parsing
// cost before any field is extracted.
func BenchmarkParse(b *testing.B) {
	lines := benchCorpus(b)
	var p Parser
	yield := func(*Event) error { return nil }
	b.SetBytes(corpusBytes(lines) / int64(len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		if err := p.Parse(lines[i%len(lines)], yield, nil); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodeMapBaseline is the reference the speed requirement is measured against:
// encoding/json decoding the same lines into map[string]any.
func BenchmarkDecodeMapBaseline(b *testing.B) {
	lines := benchCorpus(b)
	b.SetBytes(corpusBytes(lines) / int64(len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		var m map[string]any
		if err := json.Unmarshal(lines[i%len(lines)], &m); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkParseExtract parses each line and extracts every field the default rules
// reference, a stand-in for rule evaluation that does not need the rule engine.
func BenchmarkParseExtract(b *testing.B) {
	lines := benchCorpus(b)
	src := NewSource()
	var fields []func(any, []string) ([]string, bool)
	for _, ref := range defaultRuleFields {
		name, arg, hasArg := splitRef(ref)
		f, err := src.Field(name, arg, hasArg)
		if err != nil {
			b.Fatal(err)
		}
		fields = append(fields, f.Extract)
	}
	var p Parser
	buf := make([]string, 0, 16)
	yield := func(ev *Event) error {
		for _, f := range fields {
			buf, _ = f(ev, buf)
		}
		return nil
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		if err := p.Parse(lines[i%len(lines)], yield, nil); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// defaultRuleFields are the fields k8s_audit_rules.yaml's conditions use.
var defaultRuleFields = []string{
	"jevt.rawtime", "jevt.value[/stage]", "ka.target.resource", "ka.verb", "ka.user.name",
	"ka.target.name", "ka.target.namespace", "ka.target.subresource", "ka.uri", "ka.auth.decision",
	"ka.response.code", "ka.req.pod.containers.image.repository", "ka.req.container.image.repository",
	"ka.req.pod.containers.privileged", "ka.req.pod.initContainers.privileged",
	"ka.req.pod.ephemeralContainers.privileged", "ka.req.pod.host_network", "ka.req.pod.host_pid",
	"ka.req.pod.host_ipc", "ka.req.pod.volumes.hostpath", "ka.req.role.rules.verbs",
	"ka.req.role.rules.resources", "ka.req.binding.role", "ka.req.service.type", "ka.req.configmap.obj",
	"jevt.value[/requestObject/spec/tls]",
}

func TestCorpusParses(t *testing.T) {
	lines := genCorpus(t, 2000)
	var p Parser
	n := 0
	for i, l := range lines {
		if err := p.Parse(l, func(*Event) error { n++; return nil }, func(ie *ItemError) { t.Errorf("line %d: %v", i, ie) }); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
	if n != len(lines) {
		t.Fatalf("parsed %d events of %d lines", n, len(lines))
	}
}

// BenchmarkReplayDefaultRules is the whole offline path on one core when run with
// GOMAXPROCS=1: read JSONL, parse, evaluate the full default rules, write every alert as
// Falco JSON. One op is the whole 100,000-event corpus. It reports events/s and, measured
// in the same run, the ratio to encoding/json decoding the same lines into map[string]any.
func BenchmarkReplayDefaultRules(b *testing.B) {
	lines := benchCorpus(b)
	var in bytes.Buffer
	for _, l := range lines {
		in.Write(l)
		in.WriteByte('\n')
	}
	e := loadEngine(b, rules.MatchFirst, "DEFAULT")
	rp := &Replayer{Engine: e}
	var replayCPU, decodeCPU time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := cpuTime()
		if err := rp.ReplayReader(context.Background(), "corpus", bytes.NewReader(in.Bytes()), io.Discard); err != nil {
			b.Fatal(err)
		}
		replayCPU += cpuTime() - start
		b.StopTimer()
		start = cpuTime()
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal(l, &m); err != nil {
				b.Fatal(err)
			}
		}
		decodeCPU += cpuTime() - start
		b.StartTimer()
	}
	events := float64(b.N * len(lines))
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(events/replayCPU.Seconds(), "events/cpu-s")
	b.ReportMetric(decodeCPU.Seconds()/replayCPU.Seconds(), "x-map-decode")
	if got := rp.Stats.Received.Load(); got != uint64(b.N*len(lines)) {
		b.Fatalf("evaluated %d events, want %d", got, b.N*len(lines))
	}
}

// BenchmarkHandlerEventList is the webhook path without the network: EventList batches of
// 100 corpus events through Handler.ServeHTTP with the default rules and a no-op submitter.
func BenchmarkHandlerEventList(b *testing.B) {
	lines := benchCorpus(b)
	const batch = 100
	var bodies [][]byte
	for i := 0; i+batch <= len(lines) && len(bodies) < 100; i += batch {
		bodies = append(bodies, eventList(lines[i:i+batch]))
	}
	h := NewHandler(loadEngine(b, rules.MatchFirst, "DEFAULT"), SubmitFunc(func(context.Context, *event.Event) error { return nil }), Limits{}, nil)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("POST", "/k8s-audit", bytes.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	cpu.report(b, b.N*batch)
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}
