package main

import (
	"errors"
	"log/slog"

	"github.com/saker-dev/saker/engine/metrics"
	"github.com/saker-dev/saker/engine/statsd"
)

// statsdOptions are the forwarders configured: statsd.forwarder (plain StatsD) and
// dogstatsd.forwarder (tagged), each on when its address is set.
func (lc *loadedConfig) statsdOptions(log *slog.Logger) []statsd.Options {
	g := lc.global
	var out []statsd.Options
	if g.Statsd.Forwarder != "" {
		out = append(out, statsd.Options{Key: "statsd.forwarder", Forwarder: g.Statsd.Forwarder,
			Namespace: g.Statsd.Namespace, Log: log})
	}
	if g.Dogstatsd.Forwarder != "" {
		out = append(out, statsd.Options{Key: "dogstatsd.forwarder", Forwarder: g.Dogstatsd.Forwarder,
			Namespace: g.Dogstatsd.Namespace, Tagged: true, Tags: g.Dogstatsd.AllTags(), Log: log})
	}
	return out
}

// statsdError is the first invalid statsd or dogstatsd key.
func (lc *loadedConfig) statsdError() error {
	var errs []error
	for _, o := range lc.statsdOptions(nil) {
		errs = append(errs, o.Validate())
	}
	return errors.Join(errs...)
}

// startStatsd starts the configured forwarders; the caller closes them (closeStatsd) once
// the last count is made.
func startStatsd(cfg *loadedConfig, log *slog.Logger) ([]*statsd.Sink, error) {
	var sinks []*statsd.Sink
	for _, o := range cfg.statsdOptions(log) {
		s, err := statsd.New(o)
		if err != nil {
			closeStatsd(sinks)
			return nil, err
		}
		log.Info("sending falcosidekick's counters", "forwarder", o.Key, "addr", o.Forwarder, "namespace", o.Namespace)
		sinks = append(sinks, s)
	}
	return sinks, nil
}

// registerStatsdDrops exports the payloads each forwarder lost.
func registerStatsdDrops(m *metrics.Metrics, sinks []*statsd.Sink, opts []statsd.Options) error {
	if len(sinks) == 0 {
		return nil
	}
	return m.CounterFunc("saker_statsd_dropped_total",
		"StatsD/DogStatsD payloads (datagrams of summed counts) lost: the send queue was full or the forwarder could not be reached.",
		"forwarder", func() map[string]uint64 {
			out := map[string]uint64{}
			for i, s := range sinks {
				out[opts[i].Key] = s.Dropped()
			}
			return out
		})
}

// closeStatsd sends what the forwarders counted and stops them.
func closeStatsd(sinks []*statsd.Sink) {
	for _, s := range sinks {
		_ = s.Close()
	}
}
