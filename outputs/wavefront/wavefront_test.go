package wavefront

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

// point parses one line of Wavefront's data format as the proxy does: metric, value,
// timestamp, source and quoted point tags; it fails on anything else.
var (
	pointHead = regexp.MustCompile(`^([A-Za-z0-9._-]+) (\S+) (\d+) source="falco-exporter"`)
	pointTag  = regexp.MustCompile(`^ ([A-Za-z0-9._-]+)="((?:[^"\\]|\\.)*)"`)
)

func parsePoint(t *testing.T, line string) (metric string, ts int64, tags map[string]string) {
	t.Helper()
	m := pointHead.FindStringSubmatch(line)
	if m == nil || m[2] != "1" {
		t.Fatalf("not a point: %q", line)
	}
	ts, _ = strconv.ParseInt(m[3], 10, 64)
	rest := line[len(m[0]):]
	tags = map[string]string{}
	for rest != "" {
		tm := pointTag.FindStringSubmatch(rest)
		if tm == nil {
			t.Fatalf("bad point tags %q in %q", rest, line)
		}
		if len(tm[1])+len(tm[2]) > maxTag+2*strings.Count(tm[2], `\`) {
			t.Errorf("tag %s longer than Wavefront allows", tm[1])
		}
		tags[tm[1]] = strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\n`, "\n", `\r`, "\r").Replace(tm[2])
		rest = rest[len(tm[0]):]
	}
	return m[1], ts, tags
}

// TestLines: each event is one point of falco.alert with falcosidekick's tags, hostile text
// included.
func TestLines(t *testing.T) {
	evs := goldens.Events(t, nil)
	evs["hostile"] = &event.Event{Rule: `a "quoted" \ rule`, Priority: event.Alert, Source: "s", Time: time.Unix(1700000000, 0),
		Output: "x", OutputFields: map[string]any{"proc cmd": "sh -c \"x\"\nnext", "long": strings.Repeat("é", 400), "nil": nil}}
	for name, ev := range evs {
		line := string(Line("falco.alert", ev))
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Fatalf("%s: not one line: %q", name, line)
		}
		metric, ts, tags := parsePoint(t, strings.TrimSuffix(line, "\n"))
		if metric != "falco.alert" || ts != ev.Time.Unix() || tags["severity"] != ev.Priority.String() || tags["rule"] != ev.Rule || tags["source"] != ev.Source {
			t.Errorf("%s: %s %d %v", name, metric, ts, tags)
		}
		for k, v := range ev.OutputFields {
			if s, ok := v.(string); ok && len(s) < 100 && tags[strings.ReplaceAll(k, " ", "_")] != s {
				t.Errorf("%s: tag %s = %q, want %q", name, k, tags[k], s)
			}
		}
	}
}

// TestProxyRestartLosesNothing: points sent through the engine while the proxy is down and
// after it restarts all arrive.
func TestProxyRestartLosesNothing(t *testing.T) {
	srv := testpeers.StartLineServer(t, nil)
	c := defaults()
	c.EndpointType, c.EndpointHost, c.EndpointMetricPort = "proxy", "127.0.0.1", srv.Port
	out, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	eng := deliverytest.Start(t, out, deliverytest.Policy(""))
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			deliverytest.Publish(t, eng, &event.Event{Rule: fmt.Sprintf("rule %d", i), Priority: event.Notice, Time: time.Now(), Source: "syscalls"})
		}
	}
	publish(0, 5)
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(srv.Lines()) == 5 }, "first points")
	srv.Stop()
	publish(5, 10)
	deliverytest.WaitFailing(t, eng)
	srv.Start(t)
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(srv.Lines()) >= 10 }, "points after the restart")
	eng.Stop(time.Second)
	all := strings.Join(srv.Lines(), "\n")
	for i := range 10 {
		if n := strings.Count(all, fmt.Sprintf(`rule="rule %d"`, i)); n != 1 {
			t.Errorf("rule %d: %d points", i, n)
		}
	}
}

// direct is the direct ingestion API as strict as Wavefront's: the bearer token, f=wavefront
// and parseable points; it answers 202.
type direct struct{ t *testing.T }

func (d direct) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer wftoken" {
		http.Error(w, `{"status":{"result":"ERROR","message":"Unauthorized","code":401}}`, http.StatusUnauthorized)
		return
	}
	b, _ := io.ReadAll(r.Body)
	if r.URL.Path != "/report" || r.URL.Query().Get("f") != "wavefront" || !pointHead.Match(b) {
		http.Error(w, `{"status":{"result":"ERROR","code":400}}`, http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func newDirect(t *testing.T, base, token string) delivery.Output {
	t.Helper()
	c := defaults()
	c.EndpointType, c.EndpointHost, c.EndpointToken = "direct", base, token
	out, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDirect(t *testing.T) {
	srv := httptest.NewServer(direct{t})
	defer srv.Close()
	ev := goldens.Events(t, nil)["k8s_audit_critical"]
	if err := newDirect(t, srv.URL, "wftoken").(delivery.Sender).Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	err := newDirect(t, srv.URL, "OLDTOKEN").(delivery.Sender).Send(context.Background(), ev)
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "OLDTOKEN") {
		t.Fatalf("want a permanent error without the token, got %v", err)
	}
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newDirect(t, base, "wftoken") }, direct{t})
}

func TestValidate(t *testing.T) {
	for key, c := range map[string]*Config{
		"wavefront.endpointhost":       {EndpointType: "proxy", MetricName: "falco.alert"},
		"wavefront.endpointtype":       {EndpointType: "udp", EndpointHost: "wf", MetricName: "falco.alert"},
		"wavefront.endpointtoken":      {EndpointType: "direct", EndpointHost: "wf", MetricName: "falco.alert"},
		"wavefront.endpointmetricport": {EndpointType: "proxy", EndpointHost: "wf", MetricName: "falco.alert"},
		"wavefront.metricname":         {EndpointType: "proxy", EndpointHost: "wf", EndpointMetricPort: 2878, MetricName: "falco alert"},
	} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v, want an error naming %s", err, key)
		}
	}
}
