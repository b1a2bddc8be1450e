package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Stat is one metric as falcosidekick sent it to StatsD and DogStatsD (its CountMetric): a
// name and DogStatsD tags ("outputs" with "output:slack", "status:ok"). Plain StatsD has no
// tags, so falcosidekick appended each tag's value to the name after a dot, spaces removed
// ("outputs.slack.ok"): that is Flat. Stats are built once per counter, not per increment.
type Stat struct {
	Name string
	Tags []string
	Flat string
}

// NewStat builds the Stat of name with tags of the form "key:value".
func NewStat(name string, tags ...string) Stat {
	flat := name
	for _, t := range tags {
		_, v, _ := strings.Cut(t, ":")
		flat += "." + strings.ReplaceAll(v, " ", "")
	}
	return Stat{Name: name, Tags: tags, Flat: flat}
}

// Sink receives every increment of falcosidekick's counters (inputs, outputs, Falco events)
// as the Stats falcosidekick sent, beside the Prometheus counters: the StatsD and DogStatsD
// forwarders (statsd.forwarder, dogstatsd.forwarder). Count is called on the ingest and
// delivery paths, so it must never block.
type Sink interface {
	Count(s *Stat, n int64)
}

// Counter is one series of falcosidekick's counter families: the Prometheus counter and
// the Stats its increments are also sent as. Increment these through Counter, never through
// the CounterVec, or the sinks miss them.
type Counter struct {
	prom  prometheus.Counter
	stats []Stat
	sinks []Sink
}

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Add adds n (n >= 0).
func (c *Counter) Add(n int) {
	if n <= 0 {
		return
	}
	c.prom.Add(float64(n))
	for _, s := range c.sinks {
		for i := range c.stats {
			s.Count(&c.stats[i], int64(n))
		}
	}
}

// Rejection reasons, the error tag of inputs.requests.rejected in StatsD (falcosidekick's
// are nobody and invalidjson; the others are refusals falcosidekick did not have).
const (
	RejectNoBody        = "nobody"        // not a POST
	RejectInvalidJSON   = "invalidjson"   // not a valid Falco event
	RejectTooLarge      = "toolarge"      // body or headers over the limit
	RejectUnavailable   = "unavailable"   // 503: the event could not be queued
	RejectUnknownOutput = "unknownoutput" // ?output=NAME of an output not enabled
	RejectTimeout       = "timeout"       // request not received in time
	RejectInternal      = "internal"      // anything else
)

// Input returns the counter of inputs_total{source,status}. In StatsD it is
// inputs.<source>.<status>, with error:<reason> when reason is set (rejections), and
// requests on POST / (source "requests") also count in falcosidekick's "total".
func (m *Metrics) Input(source, status, reason string) *Counter {
	var tags []string
	if reason != "" {
		tags = []string{"error:" + reason}
	}
	stats := []Stat{NewStat("inputs."+source+"."+status, tags...)}
	if source == "requests" {
		stats = append([]Stat{NewStat("total")}, stats...)
	}
	return &Counter{prom: m.Inputs.WithLabelValues(source, status), stats: stats, sinks: m.sinks}
}

// Output returns the counter of outputs_total{destination,status}: in StatsD "outputs" with
// the tags output:<destination> and status:<status>.
func (m *Metrics) Output(destination, status string) *Counter {
	return &Counter{prom: m.Outputs.WithLabelValues(destination, status),
		stats: []Stat{NewStat("outputs", "output:"+destination, "status:"+status)}, sinks: m.sinks}
}

// eventStats are falco.accepted with the tag priority:<Falco's spelling>, per priority:
// what falcosidekick sent for each event it accepted.
func eventStats() map[string]*Stat {
	out := map[string]*Stat{}
	for _, p := range []string{"", "Debug", "Informational", "Notice", "Warning", "Error", "Critical", "Alert", "Emergency"} {
		s := NewStat("falco.accepted", "priority:"+p)
		out[p] = &s
	}
	return out
}

// countEventStat sends an event's falco.accepted to the sinks.
func (m *Metrics) countEventStat(priorityName string) {
	if len(m.sinks) == 0 {
		return
	}
	s, ok := m.eventStats[priorityName]
	if !ok {
		ns := NewStat("falco.accepted", "priority:"+priorityName)
		s = &ns
	}
	for _, sink := range m.sinks {
		sink.Count(s, 1)
	}
}
