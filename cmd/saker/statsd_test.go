package main

import (
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// statsdLine is one count of the StatsD protocol, with DogStatsD's tags: name:value|c|#t,t.
var statsdLine = regexp.MustCompile(`^([^:|@#,\s]+):([0-9]+)\|c(\|#[^|,#\s]+(,[^|,#\s]+)*)?$`)

// statsdServer receives datagrams until the test ends and sums the counts per metric and
// tag set, each line checked against the protocol (counts may arrive in several flushes).
type statsdServer struct {
	conn net.PacketConn
	done chan map[string]int // the sums, once the socket closed
}

func newStatsdServer(t *testing.T) *statsdServer {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &statsdServer{conn: c, done: make(chan map[string]int, 1)}
	go func() {
		sums := map[string]int{}
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				s.done <- sums
				return
			}
			for _, line := range strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n") {
				m := statsdLine.FindStringSubmatch(line)
				if m == nil {
					t.Errorf("not a StatsD count: %q", line)
					continue
				}
				v, _ := strconv.Atoi(m[2])
				sums[m[1]+"|c"+m[3]] += v
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s
}

// check closes the socket and compares the sums, as lines (name:sum|c|#tags), with want.
func (s *statsdServer) check(t *testing.T, want []string) {
	t.Helper()
	if got := s.lines(); !slices.Equal(got, want) {
		t.Errorf("lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// lines closes the socket and returns the sums as lines (name:sum|c|#tags), sorted.
func (s *statsdServer) lines() []string {
	s.conn.Close()
	var out []string
	for k, v := range <-s.done {
		name, rest, _ := strings.Cut(k, "|")
		out = append(out, name+":"+strconv.Itoa(v)+"|"+rest)
	}
	slices.Sort(out)
	return out
}

// The daemon, configured by environment variables only, sends falcosidekick's counters to
// a StatsD and a DogStatsD server: requests accepted and rejected (by reason), the event's
// priority, a delivery that succeeded and one that failed; SIGTERM sends the last counts.
func TestStatsdAndDogstatsdCounters(t *testing.T) {
	plain, dog := newStatsdServer(t), newStatsdServer(t)
	ok := newSink(t, nil)
	bad := newSink(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(400) })
	d := start(t, "WEBHOOK_ADDRESS="+ok.srv.URL, "N8N_ADDRESS="+bad.srv.URL,
		"STATSD_FORWARDER="+plain.conn.LocalAddr().String(),
		"DOGSTATSD_FORWARDER="+dog.conn.LocalAddr().String(), "DOGSTATSD_NAMESPACE=sk.", "DOGSTATSD_TAGS=env:e2e,team:sec")
	d.mustPost(t, falcoEvent)
	ok.next(t)
	bad.next(t)
	if code, _ := d.post(t, "/", `{"output":`); code != 400 {
		t.Errorf("invalid JSON: %d", code)
	}
	resp, err := http.Get(d.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code := d.sigterm(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := []string{
		"falcosidekick.falco.accepted.Error:1|c",
		"falcosidekick.inputs.requests.accepted:1|c",
		"falcosidekick.inputs.requests.rejected.invalidjson:1|c",
		"falcosidekick.inputs.requests.rejected.nobody:1|c",
		"falcosidekick.outputs.n8n.error:1|c",
		"falcosidekick.outputs.webhook.ok:1|c",
		"falcosidekick.total:3|c",
	}
	plain.check(t, want)
	want = []string{
		"sk.falco.accepted:1|c|#env:e2e,team:sec,priority:Error",
		"sk.inputs.requests.accepted:1|c|#env:e2e,team:sec",
		"sk.inputs.requests.rejected:1|c|#env:e2e,team:sec,error:invalidjson",
		"sk.inputs.requests.rejected:1|c|#env:e2e,team:sec,error:nobody",
		"sk.outputs:1|c|#env:e2e,team:sec,output:n8n,status:error",
		"sk.outputs:1|c|#env:e2e,team:sec,output:webhook,status:ok",
		"sk.total:3|c|#env:e2e,team:sec",
	}
	dog.check(t, want)
}

// falcosidekick's example file with its statsd and dogstatsd forwarders set in the
// environment: no warning (they were "not supported" before), the values as given, and a
// bad value refused naming its key.
func TestStatsdConfigFromEnvironment(t *testing.T) {
	file := filepath.Join("..", "..", "config", "testdata", "falcosidekick", "config_example.yaml")
	lc, err := loadConfig(&globalFlags{configFile: file, set: map[string]string{}},
		[]string{"STATSD_FORWARDER=statsd:8125", "DOGSTATSD_FORWARDER=unix:///var/run/datadog/dsd.socket", "DOGSTATSD_TAGS=env:prod,team:sec"})
	if err != nil {
		t.Fatal(err)
	}
	if len(lc.result.Warnings) != 0 {
		t.Errorf("warnings: %q", lc.result.Warnings)
	}
	opts := lc.statsdOptions(nil)
	if len(opts) != 2 || opts[0].Forwarder != "statsd:8125" || opts[0].Namespace != "falcosidekick." || opts[0].Tagged ||
		!opts[1].Tagged || strings.Join(opts[1].Tags, ",") != "env:prod,team:sec" {
		t.Errorf("options %+v", opts)
	}
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"STATSD_FORWARDER=statsd"}, "statsd.forwarder"},
		{[]string{"DOGSTATSD_FORWARDER=h:1", "DOGSTATSD_TAGS=a|b"}, "dogstatsd.tags"},
		{[]string{"STATSD_FORWARDER=h:1", "STATSD_NAMESPACE=a b."}, "statsd.namespace"},
		{[]string{"DOGSTATSD_FORWARDER=unixgram://"}, "dogstatsd.forwarder"},
	} {
		_, err := loadConfig(&globalFlags{set: map[string]string{}}, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.env, err, c.want)
		}
	}
}
