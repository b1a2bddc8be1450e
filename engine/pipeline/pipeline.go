// Package pipeline is the path every accepted event takes, whatever its input (Falco's HTTP
// output, the audit rule engine, POST /test): enrich, count, route, queue.
package pipeline

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/enrich"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
)

// TestRule is the rule name of POST /test events, which reach every output whatever its
// minimumpriority (as in falcosidekick).
const TestRule = delivery.TestRule

// Pipeline hands events to the delivery engine.
type Pipeline struct {
	enricher *enrich.Enricher
	engine   *delivery.Engine
	metrics  *metrics.Metrics
	log      *slog.Logger
	recorder Recorder
}

// Recorder sees every accepted event with the outputs it was queued for (the web UI's
// store). Offer must not block: it is called on the input's path.
type Recorder interface {
	Offer(ev *event.Event, outputs []string) bool
}

// SetRecorder makes r see every event accepted from now on. Call it before the inputs serve.
func (p *Pipeline) SetRecorder(r Recorder) { p.recorder = r }

// New returns a pipeline.
func New(enr *enrich.Enricher, eng *delivery.Engine, m *metrics.Metrics, log *slog.Logger) *Pipeline {
	return &Pipeline{enricher: enr, engine: eng, metrics: m, log: log}
}

// Result says where an accepted event went.
type Result struct {
	Outputs []string // outputs it is queued for
	Dropped []string // outputs that dropped it (whenfull=dropnewest)
}

// Accept enriches ev, counts it and queues it for its outputs (only the named one when only
// is set). It returns once every queue holds it; a *delivery.FullError means none does.
func (p *Pipeline) Accept(ctx context.Context, ev *event.Event, only string) (Result, error) {
	if ev.Received.IsZero() {
		ev.Received = time.Now()
	}
	if err := p.enricher.Apply(ev); err != nil {
		p.log.Warn("enrichment", "err", err)
	}
	p.count(ev)
	targets, res, err := p.engine.Dispatch(ctx, ev, only)
	if err != nil {
		return Result{}, err // refused: the sender retries, so it is not recorded either
	}
	if len(targets) == 0 {
		p.record(ev, nil)
		return Result{}, nil
	}
	out := Result{Outputs: targets}
	if len(res.DroppedNewest) > 0 {
		dropped := make(map[string]bool, len(res.DroppedNewest))
		for _, n := range res.DroppedNewest {
			dropped[n] = true
		}
		out.Outputs = out.Outputs[:0:0]
		for _, n := range targets {
			if !dropped[n] {
				out.Outputs = append(out.Outputs, n)
			}
		}
		out.Dropped = res.DroppedNewest
	}
	p.record(ev, out.Outputs)
	return out, nil
}

func (p *Pipeline) record(ev *event.Event, outputs []string) {
	if p.recorder != nil {
		p.recorder.Offer(ev, outputs)
	}
}

// Submit is Accept for inputs that don't pick an output (the audit rule engine).
func (p *Pipeline) Submit(ctx context.Context, ev *event.Event) error {
	_, err := p.Accept(ctx, ev, "")
	return err
}

func (p *Pipeline) count(ev *event.Event) {
	host := ev.Hostname
	if host == "" {
		host = "unknown"
	}
	str := func(k string) string { s, _ := ev.OutputFields[k].(string); return s }
	name := ev.Priority.String()
	p.metrics.CountEvent(metrics.EventLabels{Rule: ev.Rule, Priority: strconv.Itoa(int(ev.Priority)),
		PriorityRaw: strings.ToLower(name), PriorityName: name, Source: ev.Source, Hostname: host,
		K8sNamespace: str("k8s.ns.name"), K8sPod: str("k8s.pod.name"), OutputFields: ev.OutputFields})
}
