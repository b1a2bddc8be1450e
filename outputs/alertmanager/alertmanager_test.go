package alertmanager

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
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

// fixedNow makes endsAt reproducible in the golden files.
var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func loadEvents(t *testing.T) map[string]*event.Event {
	t.Helper()
	return goldens.Events(t, func(name string) string {
		return fmt.Sprintf("00000000-0000-4000-8000-%012d", len(name))
	})
}

func newOut(t *testing.T, c *Config) *Alertmanager {
	t.Helper()
	if len(c.HostPort) == 0 {
		c.HostPort = []string{"http://127.0.0.1:1"}
	}
	a, err := New(c, outputs.Env{Log: slog.Default(), Policy: delivery.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	a.now = func() time.Time { return fixedNow }
	return a
}

// variants mirror the falcosidekick recordings (goldens.Recorded).
func variants() map[string]*Config {
	d := defaults()
	e := defaults()
	e.ExpiresAfter = 300
	e.ExtraAnnotations = map[string]string{"runbook": "https://runbook.invalid/x"}
	e.ExtraLabels = map[string]string{"team": "secops", "env": "prod"}
	return map[string]*Config{"alertmanager": d, "alertmanager-expires-extralabels": e}
}

func TestPayloadGolden(t *testing.T) {
	evs := loadEvents(t)
	for variant, cfg := range variants() {
		a := newOut(t, cfg)
		for name, ev := range evs {
			body, err := a.Payload(ev)
			if err != nil {
				t.Fatal(err)
			}
			var pretty any
			if err := json.Unmarshal(body, &pretty); err != nil {
				t.Fatalf("%s/%s: payload is not JSON: %v", variant, name, err)
			}
			goldens.Check(t, filepath.Join("testdata", "golden", variant, name+".json"), append(body, '\n'))
		}
	}
}

// TestShapeMatchesFalcosidekick compares each payload with what falcosidekick sent for the
// same event: the same labels with the same values and the same annotations, except for the
// documented differences (non-string fields kept, startsAt added, endsAt from the send time
// or omitted, numeric drop counts treated like string ones).
func TestShapeMatchesFalcosidekick(t *testing.T) {
	evs := loadEvents(t)
	for variant, cfg := range variants() {
		a := newOut(t, cfg)
		for name, ev := range evs {
			req := goldens.Recorded(t, variant, name)
			if req.Path != "/alertmanager"+cfg.Endpoint {
				t.Errorf("%s/%s: falcosidekick posted to %s, we post to %s", variant, name, req.Path, cfg.Endpoint)
			}
			var theirs, ours []map[string]any
			if err := json.Unmarshal([]byte(req.Body), &theirs); err != nil {
				t.Fatal(err)
			}
			body, _ := a.Payload(ev)
			if err := json.Unmarshal(body, &ours); err != nil {
				t.Fatal(err)
			}
			if len(ours) != 1 || len(theirs) != 1 {
				t.Fatalf("%s/%s: %d alerts, falcosidekick %d", variant, name, len(ours), len(theirs))
			}
			tl, ol := theirs[0]["labels"].(map[string]any), ours[0]["labels"].(map[string]any)
			numericDrop := name == "alertmanager_test_drop_event_numeric_fields"
			for k, v := range tl {
				if numericDrop && (k == "priority" || k == "severity") {
					// falcosidekick skips the thresholds for numeric counts (a defect); we
					// apply them as for string counts: Critical.
					if ol[k] != map[string]string{"priority": "Critical", "severity": "critical"}[k] {
						t.Errorf("%s/%s: label %s = %v, want the threshold's", variant, name, k, ol[k])
					}
					continue
				}
				if k == "eventsource" && ev.Rule == "Test rule" && v == "internal" {
					continue // falcosidekick's input rewrites the source of its test events
				}
				if strings.HasPrefix(k, "n_drop") && strings.HasPrefix(fmt.Sprint(ol[k]), ">") {
					// falcosidekick's default thresholds "10000:critical, 1000:critical, ..."
					// lose every entry after the first to the space after the comma (a
					// defect); we parse them all, so 798 is ">100" here.
					continue
				}
				if ol[k] != v {
					t.Errorf("%s/%s: label %s = %q, falcosidekick %q", variant, name, k, ol[k], v)
				}
			}
			for k := range ol {
				if _, ok := tl[k]; ok {
					continue
				}
				// Only fields falcosidekick silently dropped (lists, booleans) may be extra.
				found := false
				for f, v := range ev.OutputFields {
					if SafeLabel(f) == k {
						switch v.(type) {
						case string, json.Number:
						default:
							found = true
						}
					}
				}
				if !found {
					t.Errorf("%s/%s: extra label %s=%v", variant, name, k, ol[k])
				}
			}
			if !reflect.DeepEqual(theirs[0]["annotations"], ours[0]["annotations"]) {
				t.Errorf("%s/%s: annotations %v, falcosidekick %v", variant, name, ours[0]["annotations"], theirs[0]["annotations"])
			}
			if ours[0]["startsAt"] != ev.Time.Format(time.RFC3339Nano) {
				t.Errorf("%s/%s: startsAt %v, want the event time", variant, name, ours[0]["startsAt"])
			}
			_, hasEnds := ours[0]["endsAt"]
			if hasEnds != (cfg.ExpiresAfter > 0) {
				t.Errorf("%s/%s: endsAt present=%v with expiresafter=%d", variant, name, hasEnds, cfg.ExpiresAfter)
			}
		}
	}
}

func TestSafeLabel(t *testing.T) {
	for in, want := range map[string]string{
		"proc.name": "proc_name", "ka.user.name": "ka_user_name", "proc.aname[2]": "proc_aname_2",
		"evt.arg.flags": "evt_arg_flags", "__x..y__": "x_y", "1abc": "_1abc", "...": "", "café": "caf",
		"k8s.ns.name": "k8s_ns_name", "a__b": "a_b",
	} {
		if got := SafeLabel(in); got != want {
			t.Errorf("SafeLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzSafeLabel(f *testing.F) {
	for _, s := range []string{"proc.name", "1x", "", "ü.ä", "a__b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SafeLabel(s)
		if got != "" && !validLabelName(got) {
			t.Fatalf("SafeLabel(%q) = %q is not a valid label name", s, got)
		}
		if SafeLabel(got) != got && !strings.HasPrefix(got, "_") {
			t.Fatalf("SafeLabel not idempotent on %q", got)
		}
	})
}

func TestParseThresholds(t *testing.T) {
	got, err := ParseThresholds("1:warning, 10000:critical,100:Error")
	if err != nil {
		t.Fatal(err)
	}
	want := []Threshold{{10000, event.Critical}, {100, event.Error}, {1, event.Warning}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"x:critical", "10", "10:loud", "-1:debug"} {
		if _, err := ParseThresholds(bad); err == nil || !strings.Contains(err.Error(), "alertmanager.dropeventthresholds") {
			t.Errorf("ParseThresholds(%q) = %v, want an error naming the key", bad, err)
		}
	}
}

func FuzzParseThresholds(f *testing.F) {
	f.Add("10000:critical, 1000:critical, 100:critical, 10:warning, 1:warning")
	f.Add("5:info,,")
	f.Fuzz(func(t *testing.T, s string) {
		th, err := ParseThresholds(s)
		if err != nil {
			return
		}
		for i := 1; i < len(th); i++ {
			if th[i].Value > th[i-1].Value {
				t.Fatalf("not sorted: %v", th)
			}
		}
		for _, x := range th {
			if x.Priority == event.Default || x.Value < 0 {
				t.Fatalf("invalid threshold accepted: %v", x)
			}
		}
	})
}

func TestDropBuckets(t *testing.T) {
	a := newOut(t, defaults())
	for _, tc := range []struct {
		n     int64
		label string
		prio  event.Priority
	}{
		{0, "0", event.Debug}, {1, "1", event.Critical}, {5, ">1", event.Warning},
		{50, ">10", event.Warning}, {500, ">100", event.Critical}, {815508, ">10000", event.Critical},
	} {
		l, p := a.bucketDrops(tc.n, event.Debug)
		if l != tc.label || p != tc.prio {
			t.Errorf("bucketDrops(%d) = %q, %v; want %q, %v", tc.n, l, p, tc.label, tc.prio)
		}
	}
}

func TestValidateNamesKeys(t *testing.T) {
	for key, mut := range map[string]func(*Config){
		"alertmanager.hostport":                 func(c *Config) { c.HostPort = []string{"ftp://x"} },
		"alertmanager.endpoint":                 func(c *Config) { c.Endpoint = "api" },
		"alertmanager.customseveritymap":        func(c *Config) { c.CustomSeverityMap = map[string]string{"loud": "x"} },
		"alertmanager.dropeventdefaultpriority": func(c *Config) { c.DropEventDefaultPriority = "x" },
		"alertmanager.extralabels":              func(c *Config) { c.ExtraLabels = map[string]string{"a-b": "x"} },
		"alertmanager.expiresafter":             func(c *Config) { c.ExpiresAfter = -1 },
	} {
		c := defaults()
		c.HostPort = []string{"http://am:9093"}
		mut(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: Validate() = %v", key, err)
		}
	}
	c := defaults()
	c.CustomSeverityMap = map[string]string{"debug": "low"}
	c.HostPort = []string{"http://am:9093"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a := newOut(t, c)
	if al := a.alert(&event.Event{Rule: "r", Priority: event.Debug}); al.Labels["severity"] != "low" {
		t.Fatalf("customseveritymap ignored: %v", al.Labels)
	}
}

// TestSecretsNotInErrors: credentials in hostport and custom headers never reach an error.
func TestSecretsNotInErrors(t *testing.T) {
	port := testpeers.FreePort(t)
	c := defaults()
	c.HostPort = []string{fmt.Sprintf("http://user:s3cr3t@127.0.0.1:%d", port)}
	c.CustomHeaders = map[string]string{"Authorization": "Bearer t0ken"}
	a := newOut(t, c)
	err := a.Send(context.Background(), &event.Event{Rule: "r", Priority: event.Error, Time: fixedNow})
	if err == nil {
		t.Fatal("send to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "t0ken") {
		t.Fatalf("secret in error: %v", err)
	}
	if delivery.IsPermanent(err) {
		t.Fatalf("connection refused must be transient: %v", err)
	}
}

func sample(rule string, p event.Priority) *event.Event {
	return &event.Event{UUID: "u-" + rule, Output: "out " + rule, Priority: p, Rule: rule, Source: "syscalls",
		Hostname: "h1", Time: time.Now().UTC(), Tags: []string{"b", "a"},
		OutputFields: map[string]any{"proc.name": "sh", "proc.pid": json.Number("42"), "ka.groups": []any{"x", "y"}}}
}

func findAlert(alerts []testpeers.AMAlert, rule string) *testpeers.AMAlert {
	for i := range alerts {
		if alerts[i].Labels["rule"] == rule {
			return &alerts[i]
		}
	}
	return nil
}

// TestIntegration posts to two real Alertmanagers and reads the alert back from both.
func TestIntegration(t *testing.T) {
	am1 := testpeers.StartAlertmanager(t, 0)
	am2 := testpeers.StartAlertmanager(t, 0)
	c := defaults()
	c.HostPort = []string{am1.URL, am2.URL + "/"}
	c.ExpiresAfter = 600
	c.ExtraLabels = map[string]string{"team": "secops"}
	c.ExtraAnnotations = map[string]string{"runbook": "https://runbook.invalid/x"}
	c.GeneratorURL = "https://saker.invalid/ui/events/{uuid}"
	a, err := New(c, outputs.Env{Policy: delivery.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	ev := sample("Integration <rule> & co", event.Critical)
	if err := a.Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	for _, am := range []*testpeers.Alertmanager{am1, am2} {
		var got *testpeers.AMAlert
		testpeers.Eventually(t, 10*time.Second, func() bool { got = findAlert(am.Alerts(t), ev.Rule); return got != nil },
			"alert not in %s: %v", am.URL, am.Alerts(t))
		want := map[string]string{"alertname": ev.Rule, "rule": ev.Rule, "priority": "Critical", "severity": "critical",
			"source": "falco", "eventsource": "syscalls", "hostname": "h1", "tags": "a,b", "proc_name": "sh",
			"proc_pid": "42", "ka_groups": "x,y", "team": "secops"}
		if !reflect.DeepEqual(got.Labels, want) {
			t.Errorf("labels %v\nwant %v", got.Labels, want)
		}
		if got.Annotations["summary"] != ev.Rule || got.Annotations["runbook"] == "" || got.Annotations["description"] != ev.Output {
			t.Errorf("annotations %v", got.Annotations)
		}
		if got.GeneratorURL != "https://saker.invalid/ui/events/u-Integration%20%3Crule%3E%20&%20co" {
			t.Errorf("generatorURL %q", got.GeneratorURL)
		}
		if !got.StartsAt.Equal(ev.Time.Truncate(time.Millisecond)) { // Alertmanager keeps milliseconds
			t.Errorf("startsAt %v, want %v", got.StartsAt, ev.Time)
		}
		if d := time.Until(got.EndsAt); d < 8*time.Minute || d > 11*time.Minute {
			t.Errorf("endsAt %v is not about 10 minutes from now", got.EndsAt)
		}
	}
	// An event from a clock ahead of ours starts now, so Alertmanager does not refuse it.
	future := sample("future", event.Critical)
	future.Time = time.Now().Add(time.Hour)
	if err := a.Send(context.Background(), future); err != nil {
		t.Errorf("event from the future: %v", err)
	}
	// An alert Alertmanager refuses (invalid label name, 400) is a permanent error.
	a.extraL = map[string]string{"bad-name": "x"}
	if err := a.Send(context.Background(), sample("bad", event.Critical)); err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "400") {
		t.Errorf("refused alert: err %v, want permanent 400", err)
	}
}

// TestDownThenUp publishes while Alertmanager is down; once it starts, every alert arrives.
func TestDownThenUp(t *testing.T) {
	port := testpeers.FreePort(t)
	c := defaults()
	c.HostPort = []string{fmt.Sprintf("http://127.0.0.1:%d", port)}
	a, err := New(c, outputs.Env{Policy: delivery.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	p := delivery.DefaultPolicy()
	p.Retry.Initial = 50 * time.Millisecond
	p.Retry.Max = 200 * time.Millisecond
	p.Timeout = 2 * time.Second
	eng := deliverytest.Start(t, a, p)
	const n = 8
	for i := range n {
		ev := sample(fmt.Sprintf("down-up-%d", i), event.Warning)
		deliverytest.Publish(t, eng, ev)
	}
	testpeers.Eventually(t, 5*time.Second, func() bool {
		for _, h := range eng.Health() {
			if h.State == "failing" {
				return true
			}
		}
		return false
	}, "output never failed while the peer was down")
	am := testpeers.StartAlertmanager(t, port)
	testpeers.Eventually(t, 15*time.Second, func() bool { return len(am.Alerts(t)) == n },
		"want %d alerts, got %d", n, len(am.Alerts(t)))
	if lost := eng.Stop(time.Second); lost != 0 {
		t.Fatalf("%d events lost", lost)
	}
	for _, h := range eng.Health() {
		if h.Delivered != n || h.Failed != 0 {
			t.Fatalf("health %+v", h)
		}
	}
}

// TestMinimumPriority routes through the engine: below alertmanager.minimumpriority, nothing.
func TestMinimumPriority(t *testing.T) {
	am := testpeers.StartAlertmanager(t, 0)
	c := defaults()
	c.HostPort = []string{am.URL}
	a, err := New(c, outputs.Env{Policy: delivery.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	p := delivery.DefaultPolicy()
	p.MinimumPriority = "error"
	eng := deliverytest.Start(t, a, p)
	defer eng.Stop(time.Second)
	low, high := sample("low", event.Warning), sample("high", event.Critical)
	if r := eng.Route(low, ""); len(r) != 0 {
		t.Fatalf("warning routed to %v despite minimumpriority=error", r)
	}
	for _, ev := range []*event.Event{low, high} {
		deliverytest.Publish(t, eng, ev)
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { return findAlert(am.Alerts(t), "high") != nil }, "critical alert missing")
	if findAlert(am.Alerts(t), "low") != nil {
		t.Fatal("warning alert delivered")
	}
}
