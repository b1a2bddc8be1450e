package pipeline

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/enrich"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
)

// reader is an output that reads every part of each event it gets, many times over, from
// several goroutines: the race detector catches any write to the event after Accept.
type reader struct {
	name string
	got  chan *event.Event
}

func (r *reader) Name() string { return r.name }
func (r *reader) Send(_ context.Context, ev *event.Event) error {
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				_ = ev.JSON()
				for k, v := range ev.OutputFields {
					_, _ = k, v
				}
				_ = strings.Join(ev.Tags, ",") + ev.Output + ev.UUID + ev.Source + ev.Priority.String()
				_, _ = json.Marshal(ev)
			}
		}()
	}
	wg.Wait()
	r.got <- ev
	return nil
}

func setup(t *testing.T, opts enrich.Options, prios map[string]string) (*Pipeline, *metrics.Metrics, map[string]*reader) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New(0)
	eng := delivery.NewEngine(delivery.NewMemoryBus(), m, nil, log)
	outs := map[string]*reader{}
	for _, name := range []string{"a", "b", "c"} {
		p := delivery.DefaultPolicy()
		p.QueueSize = 1000
		p.MinimumPriority = prios[name]
		outs[name] = &reader{name: name, got: make(chan *event.Event, 1000)}
		if err := eng.Add(outs[name], p); err != nil {
			t.Fatal(err)
		}
	}
	enr, err := enrich.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	eng.Start()
	t.Cleanup(func() { eng.Stop(10 * time.Second) })
	return New(enr, eng, m, log), m, outs
}

func ev(rule string, p event.Priority) *event.Event {
	return &event.Event{Rule: rule, Priority: p, Output: "o", Time: time.Unix(10, 0).UTC(), Hostname: "h1",
		OutputFields: map[string]any{"k8s.ns.name": "default", "k8s.pod.name": "web-1", "n": json.Number("1")}}
}

// eventsCount reads falco_events_total for a rule from the registry.
func eventsCount(t *testing.T, m *metrics.Metrics, rule string) (float64, map[string]string) {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "falcosecurity_falcosidekick_falco_events_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["rule"] == rule {
				return s.GetCounter().GetValue(), labels
			}
		}
	}
	return 0, nil
}

func TestAcceptRoutesByMinimumPriority(t *testing.T) {
	p, m, outs := setup(t, enrich.Options{}, map[string]string{"b": "error", "c": "critical"})
	res, err := p.Accept(context.Background(), ev("r", event.Error), "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Outputs, ",") != "a,b" {
		t.Errorf("outputs %v", res.Outputs)
	}
	<-outs["a"].got
	<-outs["b"].got
	res, _ = p.Accept(context.Background(), ev("r", event.Error), "c")
	if len(res.Outputs) != 0 {
		t.Errorf("only=c below its minimum: %v", res.Outputs)
	}
	n, labels := eventsCount(t, m, "r")
	if n != 2 {
		t.Errorf("falco_events_total = %v", n)
	}
	want := map[string]string{"rule": "r", "priority": "5", "priority_raw": "error", "source": "syscalls", "hostname": "h1",
		"k8s_ns_name": "default", "k8s_pod_name": "web-1"}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
}

func TestTestRuleBypassesMinimumPriority(t *testing.T) {
	p, _, outs := setup(t, enrich.Options{}, map[string]string{"b": "error", "c": "emergency"})
	res, err := p.Accept(context.Background(), ev(TestRule, event.Debug), "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Outputs, ",") != "a,b,c" {
		t.Errorf("test event went to %v", res.Outputs)
	}
	res, _ = p.Accept(context.Background(), ev(TestRule, event.Debug), "c")
	if strings.Join(res.Outputs, ",") != "c" {
		t.Errorf("test event for c went to %v", res.Outputs)
	}
	for _, n := range []string{"a", "b", "c"} {
		<-outs[n].got
	}
	<-outs["c"].got
}

func TestAcceptEnrichesOnceAndNeverMutatesAfter(t *testing.T) {
	p, _, outs := setup(t, enrich.Options{
		CustomFields:      map[string]string{"cluster": "prod"},
		TemplatedFields:   map[string]string{"pod": `{{ index . "k8s.pod.name" }}`},
		CustomTags:        []string{"saker"},
		BracketReplacer:   "_",
		OutputFieldFormat: "<output> <custom_fields>",
	}, nil)
	const n = 30
	var sent []*event.Event
	var wg sync.WaitGroup
	var mu sync.Mutex
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/3; i++ {
				e := ev("concurrent", event.Warning)
				e.OutputFields["a[1]"] = "x"
				if _, err := p.Accept(context.Background(), e, ""); err != nil {
					t.Error(err)
				}
				mu.Lock()
				sent = append(sent, e)
				mu.Unlock()
				// The input goes on reading its event after Accept, as handlers do.
				_ = e.UUID + string(e.JSON())
			}
		}()
	}
	wg.Wait()
	for _, name := range []string{"a", "b", "c"} {
		for i := 0; i < n; i++ {
			got := <-outs[name].got
			if got.OutputFields["cluster"] != "prod" || got.OutputFields["pod"] != "web-1" || got.OutputFields["a_1"] != "x" ||
				strings.Join(got.Tags, ",") != "saker" || got.UUID == "" || got.Received.IsZero() {
				t.Fatalf("%s got %+v", name, got)
			}
		}
	}
	if len(sent) != n {
		t.Fatalf("sent %d", len(sent))
	}
}

func TestAcceptFullQueue(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New(0)
	eng := delivery.NewEngine(delivery.NewMemoryBus(), m, nil, log)
	pol := delivery.DefaultPolicy()
	pol.QueueSize = 1
	pol.BlockTimeout = 0
	if err := eng.Add(&reader{name: "a", got: make(chan *event.Event, 1)}, pol); err != nil {
		t.Fatal(err)
	}
	pol.WhenFull = delivery.WhenFullDropNewest
	if err := eng.Add(&reader{name: "b", got: make(chan *event.Event, 1)}, pol); err != nil {
		t.Fatal(err)
	}
	enr, _ := enrich.New(enrich.Options{})
	p := New(enr, eng, m, log)
	if _, err := p.Accept(context.Background(), ev("1", event.Alert), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Accept(context.Background(), ev("2", event.Alert), "b"); err != nil {
		t.Fatal(err)
	}
	res, err := p.Accept(context.Background(), ev("2", event.Alert), "b")
	if err != nil || len(res.Outputs) != 0 || strings.Join(res.Dropped, ",") != "b" {
		t.Errorf("dropnewest: %+v %v", res, err)
	}
	_, err = p.Accept(context.Background(), ev("3", event.Alert), "")
	if _, ok := err.(*delivery.FullError); !ok {
		t.Errorf("err = %v, want *delivery.FullError", err)
	}
	if err := p.Submit(context.Background(), ev("4", event.Alert)); err == nil {
		t.Error("Submit into full queues succeeded")
	}
}
