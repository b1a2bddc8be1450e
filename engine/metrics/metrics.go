// Package metrics holds saker's Prometheus collectors: falcosidekick's metric names, so
// existing dashboards keep working, and saker's own delivery metrics.
package metrics

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultMaxEventSeries caps the label sets of falco_events_total (falcosidekick issue #1132:
// one series per rule and hostname grew without bound).
const DefaultMaxEventSeries = 2000

// OverflowLabel replaces every label of a falco_events_total sample past the cap.
const OverflowLabel = "_other"

// Metrics is the set of collectors, registered on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	Inputs  *prometheus.CounterVec // falcosecurity_falcosidekick_inputs_total{source,status}
	Outputs *prometheus.CounterVec // falcosecurity_falcosidekick_outputs_total{destination,status}
	events  *prometheus.CounterVec // falcosecurity_falcosidekick_falco_events_total{...}

	QueueDepth   *prometheus.GaugeVec     // saker_queue_depth{output}
	QueueCap     *prometheus.GaugeVec     // saker_queue_capacity{output}
	InFlight     *prometheus.GaugeVec     // saker_inflight{output}
	Retries      *prometheus.CounterVec   // saker_retries_total{output}
	Dropped      *prometheus.CounterVec   // saker_dropped_total{output,reason}
	DeadLettered *prometheus.CounterVec   // saker_deadlettered_total{output}
	Latency      *prometheus.HistogramVec // saker_delivery_latency_seconds{output}

	maxSeries int
	mu        sync.Mutex
	series    map[[7]string]prometheus.Counter
}

// New creates and registers every collector.
func New(maxEventSeries int) *Metrics {
	if maxEventSeries <= 0 {
		maxEventSeries = DefaultMaxEventSeries
	}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Inputs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falcosecurity_falcosidekick_inputs_total",
			Help: "Events received by source and status (accepted, rejected)."}, []string{"source", "status"}),
		Outputs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falcosecurity_falcosidekick_outputs_total",
			Help: "Delivery attempts by destination and status (ok, error)."}, []string{"destination", "status"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falcosecurity_falcosidekick_falco_events_total",
			Help: "Falco events by rule, priority, source and hostname; label sets past the cap are counted as _other."},
			[]string{"rule", "priority", "priority_raw", "source", "hostname", "k8s_ns_name", "k8s_pod_name"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "saker_queue_depth",
			Help: "Events waiting in an output's queue."}, []string{"output"}),
		QueueCap: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "saker_queue_capacity",
			Help: "Capacity of an output's queue."}, []string{"output"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "saker_inflight",
			Help: "Events an output is sending or waiting to retry."}, []string{"output"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_retries_total",
			Help: "Delivery attempts that were retries."}, []string{"output"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_dropped_total",
			Help: "Events an output did not deliver, by reason (queue_full, permanent, expired, shutdown)."}, []string{"output", "reason"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_deadlettered_total",
			Help: "Events written to the dead-letter file."}, []string{"output"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "saker_delivery_latency_seconds",
			Help:    "Time from acceptance to successful delivery.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}, []string{"output"}),
		maxSeries: maxEventSeries,
		series:    map[[7]string]prometheus.Counter{},
	}
	m.Registry.MustRegister(m.Inputs, m.Outputs, m.events, m.QueueDepth, m.QueueCap, m.InFlight, m.Retries,
		m.Dropped, m.DeadLettered, m.Latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// EventLabels are the labels of falco_events_total, as falcosidekick sets them: priority is
// the priority's number, priority_raw its lower-case name.
type EventLabels struct {
	Rule, Priority, PriorityRaw, Source, Hostname, K8sNamespace, K8sPod string
}

// CountEvent increments falco_events_total, folding new label sets past the cap into
// OverflowLabel so a noisy rule or many hosts cannot exhaust memory.
func (m *Metrics) CountEvent(l EventLabels) {
	key := [7]string{l.Rule, l.Priority, l.PriorityRaw, l.Source, l.Hostname, l.K8sNamespace, l.K8sPod}
	m.mu.Lock()
	c, seen := m.series[key]
	if !seen {
		if len(m.series) >= m.maxSeries {
			key = [7]string{OverflowLabel, OverflowLabel, OverflowLabel, OverflowLabel, OverflowLabel, OverflowLabel, OverflowLabel}
			c = m.series[key]
		}
		if c == nil {
			c = m.events.WithLabelValues(key[:]...)
			m.series[key] = c
		}
	}
	m.mu.Unlock()
	c.Inc()
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// CounterFunc exports counters kept elsewhere (plain atomics in an input) as one Prometheus
// counter family: read returns the current value per label value.
func (m *Metrics) CounterFunc(name, help, label string, read func() map[string]uint64) error {
	c := &funcCounters{desc: prometheus.NewDesc(name, help, []string{label}, nil), read: read}
	if err := m.Registry.Register(c); err != nil {
		return fmt.Errorf("register %s: %w", name, err)
	}
	return nil
}

type funcCounters struct {
	desc *prometheus.Desc
	read func() map[string]uint64
}

func (f *funcCounters) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

func (f *funcCounters) Collect(ch chan<- prometheus.Metric) {
	for label, v := range f.read() {
		ch <- prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, float64(v), label)
	}
}
