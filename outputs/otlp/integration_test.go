package otlp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

// collector is a running OpenTelemetry Collector (otelcol-mini: the OTLP receiver and the
// debug exporter, detailed verbosity), built by .ci/install-peers.sh.
type collector struct {
	*testpeers.Proc
	httpPort, grpcPort int
}

// startCollector runs otelcol-mini with testdata/otelcol-config.yaml on the given ports (0:
// free ones).
func startCollector(t *testing.T, httpPort, grpcPort int) *collector {
	t.Helper()
	bin := testpeers.Bin(t, "otelcol-mini")
	if httpPort == 0 {
		httpPort = testpeers.FreePort(t)
	}
	if grpcPort == 0 {
		grpcPort = testpeers.FreePort(t)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "otelcol-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("127.0.0.1:14317", "127.0.0.1:"+strconv.Itoa(grpcPort),
		"127.0.0.1:14318", "127.0.0.1:"+strconv.Itoa(httpPort)).Replace(string(b))
	path := filepath.Join(t.TempDir(), "otelcol.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testpeers.Start(t, "otelcol-mini", []string{bin, "--config", path}, nil, func() bool {
		return testpeers.PortOpen(httpPort) && testpeers.PortOpen(grpcPort)
	}, 60*time.Second)
	return &collector{Proc: p, httpPort: httpPort, grpcPort: grpcPort}
}

// endpoint is the receiver's URL for protocol.
func (c *collector) endpoint(protocol string) string {
	if protocol == GRPC {
		return fmt.Sprintf("http://127.0.0.1:%d", c.grpcPort)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", c.httpPort)
}

// item is one span, log record or metric data point the debug exporter printed, with its
// "-> key: value" lines (values as printed: Str(x), Slice([...]), ...) and its other
// "Key: value" lines.
type item struct {
	attrs  map[string]string
	fields map[string]string
}

var itemStart = regexp.MustCompile(`(?m)(?:^|\t)(Span|LogRecord|NumberDataPoints|ResourceSpans|ResourceLogs|ResourceMetrics) #\d+$`)
var attrLine = regexp.MustCompile(`^\s+-> ([^:]+): (.*)$`)
var fieldLine = regexp.MustCompile(`^\s*([A-Za-z][A-Za-z ]*?)\s*: (.*)$`)

// items parses what the collector printed into the items of kind (Span, LogRecord or
// NumberDataPoints), in order.
func (c *collector) items(kind string) []item {
	out := c.Output()
	var items []item
	locs := itemStart.FindAllStringSubmatchIndex(out, -1)
	for i, loc := range locs {
		if out[loc[2]:loc[3]] != kind {
			continue
		}
		end := len(out)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		it := item{attrs: map[string]string{}, fields: map[string]string{}}
		for _, line := range strings.Split(out[loc[1]:end], "\n") {
			if m := attrLine.FindStringSubmatch(line); m != nil {
				if _, dup := it.attrs[m[1]]; !dup { // a span event's Name comes after the attributes
					it.attrs[m[1]] = m[2]
				}
			} else if m := fieldLine.FindStringSubmatch(line); m != nil {
				it.fields[m[1]] = m[2]
			}
		}
		items = append(items, it)
	}
	return items
}

// find returns the items whose attribute key is want.
func find(items []item, key, want string) []item {
	var out []item
	for _, it := range items {
		if it.attrs[key] == want {
			out = append(out, it)
		}
	}
	return out
}

func str(s string) string { return "Str(" + s + ")" }

// TestCollector sends the recorded events through the three outputs over both protocols
// to a real collector and reads them back from its debug exporter.
func TestCollector(t *testing.T) {
	evs := goldens.Events(t, func(name string) string { return "uuid-" + name })
	names := goldens.Names(evs)
	env := outputs.Env{Policy: deliverytest.Policy(""), CustomFields: []string{"environment"}}
	for _, protocol := range []string{HTTPProtobuf, GRPC} {
		t.Run(protocol, func(t *testing.T) {
			col := startCollector(t, 0, 0)
			base := Config{Endpoint: col.endpoint(protocol), Protocol: protocol, CheckCert: true,
				Headers: "x-saker=" + protocol}
			tr, err := NewTraces(&TracesConfig{Config: base, Duration: 1500}, env)
			if err != nil {
				t.Fatal(err)
			}
			lg, err := NewLogs(&LogsConfig{Config: base}, env)
			if err != nil {
				t.Fatal(err)
			}
			mt, err := NewMetrics(&MetricsConfig{Config: base, ExtraAttributes: []string{"proc.name", "k8s.ns.name"}}, env)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			defer lg.Close()
			defer mt.Close()
			batch := make([]*event.Event, 0, len(names))
			for _, n := range names {
				batch = append(batch, evs[n].Clone())
			}
			for i, ev := range batch {
				ev.UUID = protocol + "-" + names[i]
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tr.SendBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			if err := lg.Send(ctx, batch[0]); err != nil {
				t.Fatal(err)
			}
			if err := lg.SendBatch(ctx, batch[1:]); err != nil {
				t.Fatal(err)
			}
			for _, ev := range batch {
				if err := mt.Send(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			if err := mt.Send(ctx, batch[0]); err != nil { // a retry: counted once
				t.Fatal(err)
			}
			testpeers.Eventually(t, 10*time.Second, func() bool {
				return len(find(col.items("Span"), "uuid", str(batch[len(batch)-1].UUID))) == 1 &&
					len(find(col.items("LogRecord"), "uuid", str(batch[len(batch)-1].UUID))) == 1 &&
					len(col.items("ResourceMetrics")) == len(batch)+1 // one export per Send
			}, "the collector did not print every span, record and data point:\n%s", col.Output())
			for _, ev := range batch {
				checkSpan(t, col, ev)
				checkRecord(t, col, ev)
			}
			checkCounter(t, col, batch)
		})
	}
}

func checkSpan(t *testing.T, col *collector, ev *event.Event) {
	t.Helper()
	spans := find(col.items("Span"), "uuid", str(ev.UUID))
	if len(spans) != 1 {
		t.Fatalf("%d spans for %s, want 1", len(spans), ev.UUID)
	}
	s := spans[0]
	want := map[string]string{"source": str(ev.Source), "priority": str(ev.Priority.String()), "rule": str(ev.Rule),
		"hostname": str(ev.Hostname), "Name": ev.Output}
	for k, v := range ev.OutputFields {
		want[k] = str(event.FieldText(v))
	}
	for k, v := range want {
		if s.attrs[k] != v {
			t.Errorf("span %s: %s = %q, want %q", ev.UUID, k, s.attrs[k], v)
		}
	}
	if s.fields["Name"] != ev.Rule || s.fields["Kind"] != "Server" || s.fields["Trace ID"] != TraceID(ev).String() {
		t.Errorf("span %s: name %q kind %q trace %q", ev.UUID, s.fields["Name"], s.fields["Kind"], s.fields["Trace ID"])
	}
	start, _ := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", s.fields["Start time"])
	end, _ := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", s.fields["End time"])
	if !start.Equal(ev.Time) || end.Sub(start) != 1500*time.Millisecond {
		t.Errorf("span %s: from %s to %s, want from %s for 1.5s", ev.UUID, start, end, ev.Time)
	}
}

func checkRecord(t *testing.T, col *collector, ev *event.Event) {
	t.Helper()
	recs := find(col.items("LogRecord"), "uuid", str(ev.UUID))
	if len(recs) != 1 {
		t.Fatalf("%d log records for %s, want 1", len(recs), ev.UUID)
	}
	r := recs[0]
	want := map[string]string{"source": str(ev.Source), "priority": str(ev.Priority.String()), "rule": str(ev.Rule),
		"hostname": str(ev.Hostname), "tags": str(strings.Join(ev.Tags, ",")), "timestamp": str(ev.Time.String())}
	for k, v := range want {
		if r.attrs[k] != v {
			t.Errorf("record %s: %s = %q, want %q", ev.UUID, k, r.attrs[k], v)
		}
	}
	if r.fields["Body"] != str(ev.Output) || r.fields["SeverityText"] != ev.Priority.String() {
		t.Errorf("record %s: body %q severity %q", ev.UUID, r.fields["Body"], r.fields["SeverityText"])
	}
}

// checkCounter reads the last export's data points: each series counts its events once,
// although the first event was sent twice (two recorded events share their attributes).
func checkCounter(t *testing.T, col *collector, evs []*event.Event) {
	t.Helper()
	series := func(rule, priority, host, tags string) string { return rule + "/" + priority + "/" + host + "/" + tags }
	last := map[string]item{}
	for _, p := range col.items("NumberDataPoints") {
		last[series(p.attrs["rule"], p.attrs["priority"], p.attrs["hostname"], p.attrs["tags"])] = p
	}
	want := map[string]int{}
	key := func(ev *event.Event) string {
		host := ev.Hostname
		if host == "" {
			host = "unknown"
		}
		tags := "Slice([])"
		if len(ev.Tags) > 0 {
			tags = `Slice(["` + strings.Join(ev.Tags, `","`) + `"])`
		}
		return series(str(ev.Rule), str(ev.Priority.String()), str(host), tags)
	}
	for _, ev := range evs {
		want[key(ev)]++
	}
	for _, ev := range evs {
		p, ok := last[key(ev)]
		if !ok {
			t.Errorf("no data point for %s (%s) in %v", ev.UUID, key(ev), last)
			continue
		}
		if p.fields["Value"] != strconv.Itoa(want[key(ev)]) {
			t.Errorf("%s: value %q, want %d", ev.UUID, p.fields["Value"], want[key(ev)])
		}
		name, _ := ev.OutputFields["proc.name"].(string)
		if p.attrs["proc_name"] != str(name) || p.attrs["source"] != str(ev.Source) {
			t.Errorf("%s: attributes %v", ev.UUID, p.attrs)
		}
		if _, ok := p.attrs["uuid"]; ok {
			t.Errorf("%s: the counter must not carry the uuid (one series per event)", ev.UUID)
		}
	}
}

// TestDownThenUp publishes 10 events while no collector listens, waits until the output
// failed, starts the collector on that port and checks that each event arrived once,
// through the delivery engine's retries, for each signal (and gRPC for traces).
func TestDownThenUp(t *testing.T) {
	type tc struct {
		name, protocol string
		build          func(endpoint, protocol string) (delivery.Output, error)
		count          func(col *collector, i int) int
	}
	spanCount := func(col *collector, i int) int {
		return len(find(col.items("Span"), "Name", fmt.Sprintf("saker test event %02d", i)))
	}
	cases := []tc{
		{"traces", HTTPProtobuf, func(ep, p string) (delivery.Output, error) {
			return output(NewTraces(&TracesConfig{Config: Config{Endpoint: ep, Protocol: p, CheckCert: true}, Duration: 1000}, outputs.Env{}))
		}, spanCount},
		{"traces", GRPC, func(ep, p string) (delivery.Output, error) {
			return output(NewTraces(&TracesConfig{Config: Config{Endpoint: ep, Protocol: p, CheckCert: true}, Duration: 1000}, outputs.Env{}))
		}, spanCount},
		{"logs", HTTPProtobuf, func(ep, p string) (delivery.Output, error) {
			return output(NewLogs(&LogsConfig{Config: Config{Endpoint: ep, Protocol: p, CheckCert: true}}, outputs.Env{}))
		}, func(col *collector, i int) int {
			n := 0
			for _, r := range col.items("LogRecord") {
				if r.fields["Body"] == str(fmt.Sprintf("saker test event %02d", i)) {
					n++
				}
			}
			return n
		}},
		{"metrics", HTTPProtobuf, func(ep, p string) (delivery.Output, error) {
			return output(NewMetrics(&MetricsConfig{Config: Config{Endpoint: ep, Protocol: p, CheckCert: true}}, outputs.Env{}))
		}, func(col *collector, i int) int {
			// the value of the rule's series in the last export
			v := 0
			for _, p := range find(col.items("NumberDataPoints"), "rule", str(fmt.Sprintf("rule %02d", i))) {
				v, _ = strconv.Atoi(p.fields["Value"])
			}
			return v
		}},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.protocol, func(t *testing.T) {
			httpPort, grpcPort := testpeers.FreePort(t), testpeers.FreePort(t)
			ep := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
			if c.protocol == GRPC {
				ep = fmt.Sprintf("http://127.0.0.1:%d", grpcPort)
			}
			p := deliverytest.Policy("")
			p.Batch = delivery.BatchPolicy{MaxEvents: 3, MaxBytes: 1 << 20, FlushInterval: 50 * time.Millisecond}
			out, err := c.build(ep, c.protocol)
			if err != nil {
				t.Fatal(err)
			}
			eng := deliverytest.Start(t, out, p)
			const n = 10
			for i := range n {
				deliverytest.Publish(t, eng, &event.Event{UUID: fmt.Sprintf("down-%02d", i), Rule: fmt.Sprintf("rule %02d", i),
					Priority: event.Notice, Output: fmt.Sprintf("saker test event %02d", i), Time: time.Now(), Source: "syscalls"})
			}
			deliverytest.WaitFailing(t, eng)
			col := startCollector(t, httpPort, grpcPort)
			testpeers.Eventually(t, 20*time.Second, func() bool {
				for i := range n {
					if c.count(col, i) < 1 {
						return false
					}
				}
				return true
			}, "the collector did not receive all %d events:\n%s", n, col.Output())
			eng.Stop(time.Second)
			for i := range n {
				if got := c.count(col, i); got != 1 {
					t.Errorf("event %02d arrived %d times", i, got)
				}
			}
		})
	}
}

// output turns a constructor's result into an Output.
func output[T delivery.Output](o T, err error) (delivery.Output, error) { return o, err }
