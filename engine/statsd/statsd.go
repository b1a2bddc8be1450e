// Package statsd sends falcosidekick's own counters (requests accepted and rejected, Falco
// events by priority, deliveries by output and status) to a StatsD or DogStatsD server, as
// falcosidekick's statsd.forwarder and dogstatsd.forwarder did, so dashboards built on those
// metrics keep working. It is a metrics.Sink: the same increments that feed the Prometheus
// counters arrive here.
//
// The client is DataDog's datadog-go, the library falcosidekick sends these metrics with:
// it formats both protocols, aggregates counts between flushes (one line per metric and
// tag set every FlushInterval instead of one per increment) and writes from its own
// goroutine through a bounded queue, dropping what does not fit. Counting is therefore a map
// update under a lock on the caller's goroutine and never waits for the network: a dead or
// slow forwarder costs dropped payloads, counted, never ingest latency.
package statsd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dd "github.com/DataDog/datadog-go/v5/statsd"

	"github.com/saker-dev/saker/engine/metrics"
)

// DefaultNamespace is falcosidekick's prefix of every metric name.
const DefaultNamespace = "falcosidekick."

// Options configure a Sink.
type Options struct {
	// Key names the forwarder's configuration key (statsd.forwarder) in errors and logs.
	Key string
	// Forwarder is host:port (UDP), or unix:///path, unixgram:///path (datagrams) or
	// unixstream:///path (stream) for a Unix socket: the addresses falcosidekick accepted.
	Forwarder string
	// Namespace prefixes every metric name.
	Namespace string
	// Tagged sends DogStatsD lines (name with |#tags); otherwise plain StatsD lines, with
	// the tags' values folded into the name as falcosidekick did (outputs.slack.ok).
	Tagged bool
	// Tags are added to every DogStatsD line (key:value).
	Tags []string
	// FlushInterval is how long counts are summed before they are sent (0: 2s).
	FlushInterval time.Duration
	// QueueSize bounds the payloads waiting for the network (0: datadog-go's default).
	QueueSize int
	Log       *slog.Logger
}

// Sink sends counts to one forwarder. It is safe for concurrent use.
type Sink struct {
	c       *dd.Client
	tagged  bool
	key     string
	log     *slog.Logger
	dropped atomic.Uint64 // payloads lost: queue full or write error
	lastLog atomic.Int64  // unix nanoseconds of the last error logged
	closed  sync.Once
}

// logEvery spaces the error logs of a failing forwarder.
const logEvery = time.Minute

// New starts a sink. Nothing is resolved or connected here: a forwarder whose name does not
// resolve yet, or that is down, is retried while counts are dropped, so it never keeps saker
// from starting.
func New(o Options) (*Sink, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &Sink{tagged: o.Tagged, key: o.Key, log: o.Log}
	opts := []dd.Option{
		dd.WithNamespace(o.Namespace),
		// Its own metrics about the client (datadog.dogstatsd.client.*) would land in the
		// user's StatsD next to falcosidekick's; drops are counted by the error handler.
		dd.WithoutTelemetry(),
		// Origin detection adds a container-ID field plain StatsD servers do not parse;
		// falcosidekick's client (datadog-go v4) did not send it either.
		dd.WithoutOriginDetection(),
		dd.WithErrorHandler(s.onError),
	}
	if o.Tagged && len(o.Tags) > 0 {
		opts = append(opts, dd.WithTags(o.Tags))
	}
	if o.FlushInterval > 0 {
		opts = append(opts, dd.WithAggregationInterval(o.FlushInterval))
	}
	if o.QueueSize > 0 {
		opts = append(opts, dd.WithSenderQueueSize(o.QueueSize))
	}
	var err error
	if isUnix(o.Forwarder) {
		s.c, err = dd.New(o.Forwarder, opts...) // datadog-go connects a Unix socket on first write
	} else {
		s.c, err = dd.NewWithWriter(&udpWriter{addr: o.Forwarder}, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Key, err)
	}
	return s, nil
}

// Count implements metrics.Sink.
func (s *Sink) Count(st *metrics.Stat, n int64) {
	var err error
	if s.tagged {
		err = s.c.Count(st.Name, n, st.Tags, 1)
	} else {
		err = s.c.Count(st.Flat, n, nil, 1)
	}
	if err != nil { // only after Close
		s.dropped.Add(1)
	}
}

// Dropped returns the payloads (datagrams) lost so far: queue full or write errors.
func (s *Sink) Dropped() uint64 { return s.dropped.Load() }

// Flush sends what is counted now, and waits until it was written.
func (s *Sink) Flush() error { return s.c.Flush() }

// Close sends what is counted and stops the sink.
func (s *Sink) Close() error {
	var err error
	s.closed.Do(func() { err = s.c.Close() })
	return err
}

// onError counts a lost payload and logs, at most once a minute, why.
func (s *Sink) onError(err error) {
	n := s.dropped.Add(1)
	now := time.Now().UnixNano()
	last := s.lastLog.Load()
	if now-last < int64(logEvery) || !s.lastLog.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("statsd forwarder: metrics dropped", "key", s.key, "dropped_payloads", n, "err", err)
}

// Validate checks the forwarder's address, and that the namespace and tags cannot break a
// line (name:value|c|#tag,tag). Errors name the keys of the section Key belongs to.
func (o Options) Validate() error {
	section, _, _ := strings.Cut(o.Key, ".")
	if err := validateForwarder(o.Forwarder); err != nil {
		return fmt.Errorf("%s: %w", o.Key, err)
	}
	if strings.ContainsAny(o.Namespace, nameSpecial) {
		return fmt.Errorf("%s.namespace %q: a metric name cannot hold blanks or any of : | @ # ,", section, o.Namespace)
	}
	for _, t := range o.Tags {
		if t == "" || strings.ContainsAny(t, "|,#\r\n") {
			return fmt.Errorf("%s.tags: tag %q is empty or holds one of | , # or a line break", section, t)
		}
	}
	return nil
}

// nameSpecial are the characters a metric name cannot hold.
const nameSpecial = ":|@#, \t\r\n"

// validateForwarder checks an address falcosidekick's client accepted: host:port, or a Unix
// socket path behind unix://, unixgram:// or unixstream://.
func validateForwarder(addr string) error {
	if isUnix(addr) {
		_, path, _ := strings.Cut(addr, "://")
		if path == "" {
			return fmt.Errorf("%q: no socket path after the scheme", addr)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port or unix:///path: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%q: no host", addr)
	}
	if _, err := net.LookupPort("udp", port); err != nil {
		return fmt.Errorf("%q: bad port: %w", addr, err)
	}
	return nil
}

func isUnix(addr string) bool {
	return strings.HasPrefix(addr, dd.UnixAddressPrefix) || strings.HasPrefix(addr, dd.UnixAddressDatagramPrefix) ||
		strings.HasPrefix(addr, dd.UnixAddressStreamPrefix)
}

// udpWriter sends datagrams to host:port, resolving and connecting on first use and again
// redialRetry after a failure: datadog-go's own UDP writer resolves once, in New, which
// would make a name that does not resolve yet (a StatsD service deployed after saker) a
// start-up failure. Only datadog-go's sender goroutine calls Write, so a slow DNS lookup
// delays nothing but the metrics.
type udpWriter struct {
	addr  string
	mu    sync.Mutex // Write and Close
	conn  net.Conn
	retry time.Time // no dial before this, after a failed one
}

// redialRetry spaces dial attempts to a forwarder that failed.
const redialRetry = 5 * time.Second

var errNotConnected = errors.New("not connected")

func (w *udpWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		if time.Now().Before(w.retry) {
			return 0, errNotConnected
		}
		c, err := net.Dial("udp", w.addr)
		if err != nil {
			w.retry = time.Now().Add(redialRetry)
			return 0, err
		}
		w.conn = c
	}
	return w.conn.Write(b)
}

func (w *udpWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}
