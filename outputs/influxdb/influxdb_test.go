package influxdb

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
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

func newOutput(t *testing.T, hostPort string, mod func(*Config)) *InfluxDB {
	t.Helper()
	c := defaults()
	c.HostPort = hostPort
	if mod != nil {
		mod(c)
	}
	i, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestRequestsAsFalcosidekick: the same API paths, query and authentication as
// falcosidekick's recorded writes, for the 1.x and the 2.x API.
func TestRequestsAsFalcosidekick(t *testing.T) {
	for variant, mod := range map[string]func(*Config){
		"influxdb":          nil,
		"influxdb-v2-token": func(c *Config) { c.Token, c.Organization, c.Bucket = "itok", "org", "falco" },
	} {
		i := newOutput(t, "http://127.0.0.1:1/influxdb", mod)
		rec := goldens.Recorded(t, variant, "readme_try_event")
		u, _ := url.Parse(i.url)
		wantQ, _ := url.ParseQuery(rec.Query)
		if u.Path != rec.Path || u.Query().Encode() != wantQ.Encode() || i.headers["Authorization"] != rec.Headers["Authorization"] {
			t.Errorf("%s: %s %v, falcosidekick %s?%s %v", variant, i.url, i.headers, rec.Path, rec.Query, rec.Headers)
		}
	}
}

// influx runs Debian's influxd 1.6 on free ports in a temporary directory and creates the
// database "falco".
func influx(t *testing.T) string {
	bin := testpeers.Bin(t, "influxd")
	dir := t.TempDir()
	httpPort, rpcPort := testpeers.FreePort(t), testpeers.FreePort(t)
	conf := fmt.Sprintf(`reporting-enabled = false
bind-address = "127.0.0.1:%d"
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  log-enabled = false
`, rpcPort, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), httpPort)
	cf := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	testpeers.Start(t, "influxd", []string{bin, "-config", cf}, nil, func() bool { return testpeers.PortOpen(httpPort) }, 30*time.Second)
	query(t, base, "CREATE DATABASE falco")
	return base
}

// query runs q on the falco database and returns the rows of the first series as maps.
func query(t *testing.T, base, q string) []map[string]any {
	t.Helper()
	resp, err := http.PostForm(base+"/query", url.Values{"db": {"falco"}, "q": {q}, "epoch": {"ns"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Results []struct {
			Series []struct {
				Columns []string
				Values  [][]any
			}
			Error string
		}
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil || len(r.Results) == 0 || r.Results[0].Error != "" {
		t.Fatalf("query %q: %v %s", q, err, b)
	}
	var rows []map[string]any
	for _, s := range r.Results[0].Series {
		for _, v := range s.Values {
			row := map[string]any{}
			for i, c := range s.Columns {
				row[c] = v[i]
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// TestInfluxReadsBack writes the recorded events and a hostile one to a real InfluxDB and
// reads them back: every tag and the output line intact, at the event's time — commas,
// equal signs, quotes, backslashes and line breaks included (falcosidekick's points with
// them were refused or garbled).
func TestInfluxReadsBack(t *testing.T) {
	base := influx(t)
	i := newOutput(t, base, nil)
	evs := goldens.Events(t, nil)
	for name, ev := range evs { // a host per event, to find its point
		ev = ev.Clone()
		ev.Hostname = name
		evs[name] = ev
	}
	evs["hostile"] = &event.Event{Rule: `rule, with=odd "chars" \`, Output: "line 1\nline \"2\" \\ end\\", Priority: event.Alert,
		Time: time.Unix(1700000000, 123456789), Source: "syscalls", Hostname: `hostile,h=st\`,
		OutputFields: map[string]any{"proc.cmdline": `sh -c "a=1, b=2" \`, "empty": "", "nil": nil, "n": json.Number("42")}}
	for name, ev := range evs {
		if err := i.Send(context.Background(), ev); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	rows := query(t, base, "SELECT * FROM events")
	if len(rows) != len(evs) {
		t.Fatalf("%d points read back, %d written", len(rows), len(evs))
	}
	byHost := map[string]map[string]any{}
	for _, r := range rows {
		byHost[fmt.Sprint(r["hostname"])] = r
	}
	for name, ev := range evs {
		r := byHost[wantTag(ev.Hostname)]
		if r == nil {
			t.Errorf("%s: no point for host %q in %v", name, ev.Hostname, keys(byHost))
			continue
		}
		if r["rule"] != wantTag(ev.Rule) {
			t.Errorf("%s: rule %q, want %q", name, r["rule"], wantTag(ev.Rule))
		}
		if want := strings.ReplaceAll(ev.Output, "\n", `\n`); r["value"] != want {
			t.Errorf("%s: value %q, want %q", name, r["value"], want)
		}
		if fmt.Sprint(r["time"]) != fmt.Sprint(ev.Time.UnixNano()) {
			t.Errorf("%s: time %v, event %d", name, r["time"], ev.Time.UnixNano())
		}
		if ev.Hostname != "" && r["hostname"] != wantTag(ev.Hostname) {
			t.Errorf("%s: hostname %q", name, r["hostname"])
		}
		for k, v := range ev.OutputFields {
			s := fmt.Sprint(v)
			if b, err := json.Marshal(v); err == nil && !strings.HasPrefix(string(b), `"`) {
				s = string(b)
			}
			if v == nil || s == "" {
				if r[k] != nil {
					t.Errorf("%s: empty field %s written as %v", name, k, r[k])
				}
				continue
			}
			if r[k] != wantTag(s) {
				t.Errorf("%s: tag %s = %q, want %q", name, k, r[k], wantTag(s))
			}
		}
	}
}

// wantTag is a tag value as the docs say it is stored: spaces as "_", line breaks as \n, and
// a backslash before a separator or at the end as "/".
func wantTag(s string) string {
	s = strings.ReplaceAll(s, " ", "_")
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && (i+1 == len(s) || strings.IndexByte(",=_\n", s[i+1]) >= 0 && s[i+1] != '_') {
			b.WriteByte('/')
			continue
		}
		b.WriteByte(s[i])
	}
	return strings.ReplaceAll(b.String(), "\n", `\n`)
}

func keys(m map[string]map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// endpoint is the 2.x write API as strict as InfluxDB's: the token, org and bucket, one
// point of line protocol with the events measurement and a value field; it answers 204.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Token itok" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"code":"unauthorized","message":"unauthorized access"}`))
		return
	}
	q := r.URL.Query()
	b, _ := io.ReadAll(r.Body)
	if r.URL.Path != "/api/v2/write" || q.Get("org") != "org" || q.Get("bucket") != "falco" || q.Get("precision") != "ns" ||
		!strings.HasPrefix(string(b), "events,") || !strings.Contains(string(b), ` value="`) || strings.Count(string(b), "\n") > 0 {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"code":"invalid","message":"unable to parse points"}`))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func v2(c *Config) { c.Token, c.Organization, c.Bucket = "itok", "org", "falco" }

func TestSendToStrictV2Endpoint(t *testing.T) {
	srv := httptest.NewServer(endpoint{})
	defer srv.Close()
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		if err := newOutput(t, srv.URL, v2).Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	err := newOutput(t, srv.URL, func(c *Config) { v2(c); c.Token = "REVOKEDTOKEN" }).Send(context.Background(), evs["readme_try_event"])
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "REVOKEDTOKEN") {
		t.Fatalf("want a permanent error without the token, got %v", err)
	}
}

func TestDownThenUpLosesNothing(t *testing.T) {
	deliverytest.DownThenUp(t, func(base string) delivery.Output { return newOutput(t, base, v2) }, endpoint{})
}

// TestMinimumPriority: influxdb.minimumpriority keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newOutput(t, base, v2) }, endpoint{})
}

func TestValidate(t *testing.T) {
	for key, c := range map[string]*Config{
		"influxdb.hostport":     {HostPort: "influx:8086", Database: "falco", Precision: "ns"},
		"influxdb.precision":    {HostPort: "http://influx:8086", Database: "falco", Precision: "h"},
		"influxdb.organization": {HostPort: "http://influx:8086", Token: "SECRET", Bucket: "falco", Precision: "ns"},
		"influxdb.database":     {HostPort: "http://influx:8086", Precision: "ns"},
	} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Validate() = %v, want an error naming %s", err, key)
		}
	}
}
