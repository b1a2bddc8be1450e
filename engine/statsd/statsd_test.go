package statsd

import (
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/metrics"
)

// clearDDEnv unsets the DD_* variables datadog-go turns into tags or fields, so that the
// lines asserted here do not depend on the machine.
func clearDDEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"DD_ENV", "DD_SERVICE", "DD_VERSION", "DD_ENTITY_ID", "DD_EXTERNAL_ENV",
		"DD_CARDINALITY", "DATADOG_CARDINALITY", "DD_ORIGIN_DETECTION_ENABLED"} {
		t.Setenv(k, "")
	}
}

var (
	// A StatsD count: name:value|c, nothing else (no sample rate: every increment is sent).
	plainLine = regexp.MustCompile(`^([^:|@#,\s]+):([0-9]+)\|c$`)
	// A DogStatsD count: name:value|c|#tag,tag (tags optional).
	taggedLine = regexp.MustCompile(`^([^:|@#,\s]+):([0-9]+)\|c(\|#[^|,#\s]+(,[^|,#\s]+)*)?$`)
)

// listener receives datagrams and checks every line against the protocol.
type listener struct {
	conn  net.PacketConn
	lines chan string
}

func listen(t *testing.T, network, addr string, strict *regexp.Regexp) *listener {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{conn: c, lines: make(chan string, 1000)}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				close(l.lines)
				return
			}
			for _, line := range strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n") {
				if !strict.MatchString(line) {
					t.Errorf("line %q is not a valid count", line)
				}
				l.lines <- line
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return l
}

// take returns n lines, sorted; fewer within the deadline fails.
func (l *listener) take(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case line := <-l.lines:
			got = append(got, line)
		case <-deadline:
			t.Fatalf("got %d lines of %d: %q", len(got), n, got)
		}
	}
	slices.Sort(got)
	return got
}

// countSequence makes the counts of a known sequence: three requests on POST / (two
// accepted, one invalid JSON), one 405, a Critical and a Warning event, three deliveries to
// slack of which one failed, one to loki that failed.
func countSequence(m *metrics.Metrics) {
	acc := m.Input("requests", "accepted", "")
	acc.Inc()
	acc.Inc()
	m.Input("requests", "rejected", metrics.RejectInvalidJSON).Inc()
	m.Input("requests", "rejected", metrics.RejectNoBody).Inc()
	m.CountEvent(metrics.EventLabels{Rule: "r", Priority: "6", PriorityRaw: "critical", PriorityName: "Critical"})
	m.CountEvent(metrics.EventLabels{Rule: "r", Priority: "4", PriorityRaw: "warning", PriorityName: "Warning"})
	m.Output("slack", "ok").Add(2)
	m.Output("slack", "error").Inc()
	m.Output("loki", "error").Inc()
	m.Output("loki", "ok").Add(0) // nothing to send
}

// sendSequence sends countSequence through a sink made with o, closes it (sending what it
// summed) and checks the lines l received against want.
func sendSequence(t *testing.T, o Options, l *listener, want []string) {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	countSequence(metrics.NewWith(metrics.Options{Sinks: []metrics.Sink{s}}))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := l.take(t, len(want)); !slices.Equal(got, want) {
		t.Errorf("lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s.Dropped() != 0 {
		t.Errorf("%d payloads dropped", s.Dropped())
	}
}

func TestStatsdLinesAsFalcosidekick(t *testing.T) {
	clearDDEnv(t)
	l := listen(t, "udp", "127.0.0.1:0", plainLine)
	sendSequence(t, Options{Key: "statsd.forwarder", Forwarder: l.conn.LocalAddr().String(), Namespace: DefaultNamespace}, l, []string{
		"falcosidekick.falco.accepted.Critical:1|c",
		"falcosidekick.falco.accepted.Warning:1|c",
		"falcosidekick.inputs.requests.accepted:2|c",
		"falcosidekick.inputs.requests.rejected.invalidjson:1|c",
		"falcosidekick.inputs.requests.rejected.nobody:1|c",
		"falcosidekick.outputs.loki.error:1|c",
		"falcosidekick.outputs.slack.error:1|c",
		"falcosidekick.outputs.slack.ok:2|c",
		"falcosidekick.total:4|c",
	})
}

func TestDogstatsdLinesOverUnixSocket(t *testing.T) {
	clearDDEnv(t)
	path := filepath.Join(t.TempDir(), "dsd.socket")
	l := listen(t, "unixgram", path, taggedLine)
	sendSequence(t, Options{Key: "dogstatsd.forwarder", Forwarder: "unixgram://" + path, Namespace: "saker.",
		Tagged: true, Tags: []string{"env:prod", "team:sec"}}, l, []string{
		"saker.falco.accepted:1|c|#env:prod,team:sec,priority:Critical",
		"saker.falco.accepted:1|c|#env:prod,team:sec,priority:Warning",
		"saker.inputs.requests.accepted:2|c|#env:prod,team:sec",
		"saker.inputs.requests.rejected:1|c|#env:prod,team:sec,error:invalidjson",
		"saker.inputs.requests.rejected:1|c|#env:prod,team:sec,error:nobody",
		"saker.outputs:1|c|#env:prod,team:sec,output:loki,status:error",
		"saker.outputs:1|c|#env:prod,team:sec,output:slack,status:error",
		"saker.outputs:2|c|#env:prod,team:sec,output:slack,status:ok",
		"saker.total:4|c|#env:prod,team:sec",
	})
}

// A forwarder that is not there loses payloads, counted, and counting never waits for it.
func TestDeadForwarderDropsAndNeverBlocks(t *testing.T) {
	clearDDEnv(t)
	for _, addr := range []string{"unixgram://" + filepath.Join(t.TempDir(), "nobody.socket"), "name.invalid:8125"} {
		s, err := New(Options{Key: "statsd.forwarder", Forwarder: addr, Namespace: DefaultNamespace})
		if err != nil {
			t.Fatal(err)
		}
		m := metrics.NewWith(metrics.Options{Sinks: []metrics.Sink{s}})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 20_000; i++ {
				m.Input("requests", "accepted", "").Inc()
			}
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: counting blocked on a dead forwarder", addr)
		}
		if err := s.Flush(); err != nil { // returns once the sender tried every payload
			t.Fatal(err)
		}
		if s.Dropped() == 0 {
			t.Errorf("%s: nothing counted as dropped", addr)
		}
		_ = s.Close()
	}
}

// The forwarder named in the configuration may start after saker: the UDP writer dials
// again after a failure.
func TestUDPWriterRedials(t *testing.T) {
	w := &udpWriter{addr: "name.invalid:8125"}
	if _, err := w.Write([]byte("x:1|c")); err == nil {
		t.Fatal("write to an unresolvable name succeeded")
	}
	if _, err := w.Write([]byte("x:1|c")); err != errNotConnected {
		t.Fatalf("second write within %s: %v, want errNotConnected", redialRetry, err)
	}
	l := listen(t, "udp", "127.0.0.1:0", plainLine)
	w.addr, w.retry = l.conn.LocalAddr().String(), time.Time{}
	if _, err := w.Write([]byte("x:1|c")); err != nil {
		t.Fatal(err)
	}
	if got := l.take(t, 1); got[0] != "x:1|c" {
		t.Errorf("got %q", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Key: "statsd.forwarder", Forwarder: "statsd:8125", Namespace: "falcosidekick."}, ""},
		{Options{Key: "statsd.forwarder", Forwarder: "[::1]:8125"}, ""},
		{Options{Key: "dogstatsd.forwarder", Forwarder: "unix:///var/run/datadog/dsd.socket", Tags: []string{"a:b"}}, ""},
		{Options{Key: "statsd.forwarder", Forwarder: "statsd"}, `statsd.forwarder: "statsd" is not host:port`},
		{Options{Key: "statsd.forwarder", Forwarder: ":8125"}, `statsd.forwarder: ":8125": no host`},
		{Options{Key: "statsd.forwarder", Forwarder: "h:port99"}, `statsd.forwarder: "h:port99": bad port`},
		{Options{Key: "dogstatsd.forwarder", Forwarder: "unix://"}, `dogstatsd.forwarder: "unix://": no socket path`},
		{Options{Key: "statsd.forwarder", Forwarder: "h:1", Namespace: "fal co."}, `statsd.namespace "fal co."`},
		{Options{Key: "dogstatsd.forwarder", Forwarder: "h:1", Tags: []string{"a:b,c"}}, `dogstatsd.tags: tag "a:b,c"`},
		{Options{Key: "dogstatsd.forwarder", Forwarder: "h:1", Tags: []string{""}}, `dogstatsd.tags: tag ""`},
	} {
		err := c.o.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.o, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: error %v, want %q", c.o, err, c.want)
		}
	}
}

// BenchmarkEventCounts is the counting of one accepted event delivered to two outputs
// (inputs, falco.accepted, two outputs.ok), with and without a StatsD and a DogStatsD sink.
func BenchmarkEventCounts(b *testing.B) {
	for _, sinks := range []int{0, 2} {
		b.Run(strconv.Itoa(sinks)+"sinks", func(b *testing.B) {
			var ms []metrics.Sink
			for i := 0; i < sinks; i++ {
				c, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				s, err := New(Options{Key: "statsd.forwarder", Forwarder: c.LocalAddr().String(), Namespace: DefaultNamespace, Tagged: i == 1})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				ms = append(ms, s)
			}
			m := metrics.NewWith(metrics.Options{Sinks: ms})
			acc, ok1, ok2 := m.Input("requests", "accepted", ""), m.Output("slack", "ok"), m.Output("loki", "ok")
			ev := metrics.EventLabels{Rule: "r", Priority: "6", PriorityRaw: "critical", PriorityName: "Critical", Hostname: "h"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				acc.Inc()
				m.CountEvent(ev)
				ok1.Inc()
				ok2.Inc()
			}
		})
	}
}
