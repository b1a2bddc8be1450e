// Package metrics holds saker's Prometheus collectors: falcosidekick's metric names, so
// existing dashboards keep working, and saker's own delivery metrics.
package metrics

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

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

	// Inputs and Outputs are read here; they are incremented through Input and Output,
	// whose counters also feed the StatsD sinks.
	Inputs  *prometheus.CounterVec // falcosecurity_falcosidekick_inputs_total{source,status}
	Outputs *prometheus.CounterVec // falcosecurity_falcosidekick_outputs_total{destination,status}
	events  *prometheus.CounterVec // falcosecurity_falcosidekick_falco_events_total{...}

	QueueDepth   *prometheus.GaugeVec     // saker_queue_depth{output}
	QueueCap     *prometheus.GaugeVec     // saker_queue_capacity{output}
	InFlight     *prometheus.GaugeVec     // saker_inflight{output}
	Retries      *prometheus.CounterVec   // saker_retries_total{output}
	Redelivered  *prometheus.CounterVec   // saker_redelivered_total{output}
	Unavailable  *prometheus.CounterVec   // saker_input_unavailable_total{source}
	BusConnected prometheus.Gauge         // saker_bus_connected
	BusStored    prometheus.Gauge         // saker_bus_stored_bytes
	Dropped      *prometheus.CounterVec   // saker_dropped_total{output,reason}
	DeadLettered *prometheus.CounterVec   // saker_deadlettered_total{output}
	Filtered     *prometheus.CounterVec   // saker_filtered_total{output}
	Suppressed   *prometheus.CounterVec   // saker_suppressed_total{output}
	RateLimited  *prometheus.CounterVec   // saker_ratelimited_total{output}
	Latency      *prometheus.HistogramVec // saker_delivery_latency_seconds{output}
	truncated    *prometheus.CounterVec   // saker_label_values_truncated_total{label}

	maxSeries   int
	extraLabels []ExtraLabel
	sinks       []Sink
	eventStats  map[string]*Stat
	labelNames  []string
	mu          sync.Mutex
	series      map[string]prometheus.Counter
	overflow    []string // every label OverflowLabel
}

// Options configure New.
type Options struct {
	// MaxEventSeries caps the label sets of falco_events_total (0: DefaultMaxEventSeries).
	MaxEventSeries int
	// ExtraLabels are added to falco_events_total after its fixed labels (see EventExtraLabels).
	ExtraLabels []ExtraLabel
	// Sinks receive every increment of falcosidekick's counters as falcosidekick sent it to
	// StatsD (statsd.forwarder, dogstatsd.forwarder); fixed for the Metrics' life.
	Sinks []Sink
}

// New creates and registers every collector, with falco_events_total capped at
// maxEventSeries label sets and no extra labels.
func New(maxEventSeries int) *Metrics { return NewWith(Options{MaxEventSeries: maxEventSeries}) }

// NewWith creates and registers every collector.
func NewWith(opts Options) *Metrics {
	if opts.MaxEventSeries <= 0 {
		opts.MaxEventSeries = DefaultMaxEventSeries
	}
	names := append([]string{}, baseEventLabels...)
	for _, l := range opts.ExtraLabels {
		names = append(names, l.Name)
	}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Inputs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falcosecurity_falcosidekick_inputs_total",
			Help: "Requests received by source and status (accepted, rejected, unauthorized)."}, []string{"source", "status"}),
		Outputs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falcosecurity_falcosidekick_outputs_total",
			Help: "Delivery attempts by destination and status (ok, error)."}, []string{"destination", "status"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falcosecurity_falcosidekick_falco_events_total",
			Help: "Falco events by rule, priority, source and hostname; label sets past the cap are counted as _other."},
			names),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "saker_queue_depth",
			Help: "Events waiting in an output's queue."}, []string{"output"}),
		QueueCap: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "saker_queue_capacity",
			Help: "Capacity of an output's queue."}, []string{"output"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "saker_inflight",
			Help: "Events an output is sending or waiting to retry."}, []string{"output"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_retries_total",
			Help: "Delivery attempts that were retries."}, []string{"output"}),
		Redelivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_redelivered_total",
			Help: "Events a durable bus handed out again after an unsettled attempt (a restart, a dead replica)."}, []string{"output"}),
		Unavailable: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_input_unavailable_total",
			Help: "Events answered 503 because they could not be stored: a full queue or spool, an unreachable NATS server, shutdown."}, []string{"source"}),
		BusConnected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "saker_bus_connected",
			Help: "1 while the event bus can store events (always 1 for the memory bus), 0 while its NATS server is unreachable."}),
		BusStored: prometheus.NewGauge(prometheus.GaugeOpts{Name: "saker_bus_stored_bytes",
			Help: "Bytes the durable bus's stream holds (0 for the memory bus)."}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_dropped_total",
			Help: "Events an output did not deliver, by reason (queue_full, permanent, expired, shutdown)."}, []string{"output", "reason"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_deadlettered_total",
			Help: "Events written to the dead-letter file."}, []string{"output"}),
		Filtered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_filtered_total",
			Help: "Events an output's filter kept from it."}, []string{"output"}),
		Suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_suppressed_total",
			Help: "Duplicate events an output's dedup.window suppressed."}, []string{"output"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_ratelimited_total",
			Help: "Events that waited for an output's rate limit (ratelimit.rate) before being sent; none is dropped."}, []string{"output"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "saker_delivery_latency_seconds",
			Help:    "Time from acceptance to successful delivery.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}, []string{"output"}),
		truncated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_label_values_truncated_total",
			Help: "falco_events_total label values cut to " + strconv.Itoa(MaxLabelValueLength) + " bytes, by label."}, []string{"label"}),
		maxSeries:   opts.MaxEventSeries,
		extraLabels: opts.ExtraLabels,
		sinks:       opts.Sinks,
		eventStats:  eventStats(),
		labelNames:  names,
		series:      map[string]prometheus.Counter{},
	}
	for range names {
		m.overflow = append(m.overflow, OverflowLabel)
	}
	m.Registry.MustRegister(m.Inputs, m.Outputs, m.events, m.QueueDepth, m.QueueCap, m.InFlight, m.Retries,
		m.Redelivered, m.Unavailable, m.BusConnected, m.BusStored, m.Dropped, m.DeadLettered, m.Filtered, m.Suppressed, m.RateLimited, m.Latency, m.truncated,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// baseEventLabels are the fixed labels of falco_events_total, in EventLabels order.
var baseEventLabels = []string{"rule", "priority", "priority_raw", "source", "hostname", "k8s_ns_name", "k8s_pod_name"}

// EventLabels are the labels of falco_events_total, as falcosidekick sets them: priority is
// the priority's number, priority_raw its lower-case name. OutputFields feeds the extra
// labels.
type EventLabels struct {
	Rule, Priority, PriorityRaw, Source, Hostname, K8sNamespace, K8sPod string
	// PriorityName is Falco's spelling ("Warning"), the priority tag of StatsD's falco.accepted.
	PriorityName string
	OutputFields map[string]any
}

// CountEvent increments falco_events_total, and falco.accepted in the sinks. Label values longer than MaxLabelValueLength
// are cut (and counted), and new label sets past the cap are folded into OverflowLabel, so
// neither a noisy rule, many hosts nor huge values in events can exhaust memory or make
// /metrics unscrapable.
func (m *Metrics) CountEvent(l EventLabels) {
	var buf [16]string
	values := append(buf[:0], l.Rule, l.Priority, l.PriorityRaw, l.Source, l.Hostname, l.K8sNamespace, l.K8sPod)
	for _, x := range m.extraLabels {
		values = append(values, x.value(l.OutputFields))
	}
	var kbuf [512]byte
	key := kbuf[:0]
	for i, v := range values {
		if len(v) > MaxLabelValueLength || !utf8.ValidString(v) {
			v = capLabelValue(v)
			values[i] = v
			m.truncated.WithLabelValues(m.labelNames[i]).Inc()
		}
		key = append(append(key, v...), 0xff) // 0xff never occurs in UTF-8
	}
	m.mu.Lock()
	c, seen := m.series[string(key)]
	if !seen {
		if len(m.series) >= m.maxSeries {
			key, values = overflowKey, m.overflow
			c = m.series[string(key)]
		}
		if c == nil {
			c = m.events.WithLabelValues(values...)
			m.series[string(key)] = c
		}
	}
	m.mu.Unlock()
	c.Inc()
	m.countEventStat(l.PriorityName)
}

// overflowKey is the series key of the OverflowLabel label set (which no real label set
// produces: its separators differ).
var overflowKey = []byte("\xfe" + OverflowLabel)

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
