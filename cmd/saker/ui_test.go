package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
)

// get answers GET url with the Authorization header authz ("" for none).
func get(t *testing.T, url, authz string) (int, string, http.Header) {
	t.Helper()
	return request(t, http.MethodGet, url, authz, "")
}

type searchAnswer struct {
	Results    []map[string]any `json:"results"`
	Statistics struct {
		Returned int  `json:"returned"`
		All      int  `json:"all"`
		Partial  bool `json:"partial"`
	} `json:"statistics"`
}

func search(t *testing.T, d *daemon, query string) searchAnswer {
	t.Helper()
	code, body, _ := get(t, d.url+"/api/v1/events/search?"+query, "")
	if code != 200 {
		t.Fatalf("search %s: %d %s", query, code, body)
	}
	var a searchAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("search %s: %v in %s", query, err, body)
	}
	return a
}

func uiEvent(rule, prio, output string, tags ...string) string {
	b, _ := json.Marshal(map[string]any{"rule": rule, "priority": prio, "output": output, "time": "2019-05-17T15:31:56.746609046Z",
		"source": "syscall", "hostname": "node-1", "tags": tags, "output_fields": map[string]any{"fd.name": "/bin/hack", "k8s.pod.name": "nginx-7d9f8-x2kzp"}})
	return string(b)
}

func auditEventList(t *testing.T, trace string) string {
	t.Helper()
	raw, err := os.ReadFile(goldens.Path("k8s-audit", "traces", trace))
	if err != nil {
		t.Fatal(err)
	}
	var items []json.RawMessage
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		items = append(items, json.RawMessage(line))
	}
	b, _ := json.Marshal(map[string]any{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items})
	return string(b)
}

// TestUIAPI: Falco events and audit-rule alerts reach the store; falcosidekick-ui's
// search and count API filter them; an event is found by uuid with its outputs; bad queries
// get 400 with the reason; a huge limit gets a capped page.
func TestUIAPI(t *testing.T) {
	s := newSink(t, nil)
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL)
	d.mustPost(t, uiEvent("Rule Alpha", "Critical", "alpha happened user=root", "t1", "shared"))
	d.mustPost(t, uiEvent("Rule Beta", "warning", "beta happened user=www-data", "t2", "shared"))
	d.mustPost(t, uiEvent("Rule Gamma", "Notice", "gamma happened"))
	if code, body := d.post(t, "/k8s-audit", auditEventList(t, "create_configmap_sensitive_values.json")); code != 200 {
		t.Fatalf("POST /k8s-audit: %d %s", code, body)
	}
	var all searchAnswer
	testpeers.Eventually(t, deadline, func() bool { all = search(t, d, "limit=50"); return all.Statistics.All == 9 }, "9 events stored (3 + 6 audit alerts)")
	if all.Results[0]["source"] != "k8s_audit" || !strings.Contains(strings.ToLower(fmt.Sprint(all.Results[0]["rule"])), "configmap") {
		t.Errorf("newest is not the audit alert: %v", all.Results[0])
	}
	for _, r := range all.Results {
		if u, _ := r["uuid"].(string); len(u) != 36 {
			t.Errorf("event without uuid: %v", r)
		}
	}
	cases := map[string]string{
		"priority=critical":                "Rule Alpha",
		"priority=WARNING,notice":          "Rule Beta,Rule Gamma",
		"rule=rule%20alpha":                "Rule Alpha",
		"tags=t2":                          "Rule Beta",
		"tags=shared&filter=www":           "Rule Beta",
		"filter=happened%20root":           "Rule Alpha",
		"filter=x2kz":                      "Rule Alpha,Rule Beta,Rule Gamma",
		"source=syscall&hostname=node-1":   "Rule Alpha,Rule Beta,Rule Gamma",
		"priority=null&rule=null&since=1h": "", // falcosidekick-ui's "null"; everything stored in the last hour
		"source=syscall&limit=2&page=2":    "Rule Alpha",
	}
	for q, want := range cases {
		a := search(t, d, q)
		var got []string
		for i := len(a.Results) - 1; i >= 0; i-- { // oldest first, to compare
			if a.Results[i]["source"] != "k8s_audit" {
				got = append(got, fmt.Sprint(a.Results[i]["rule"]))
			}
		}
		if q == "priority=null&rule=null&since=1h" {
			if a.Statistics.All != 9 {
				t.Errorf("%s: %d events, want 9", q, a.Statistics.All)
			}
			continue
		}
		if g := strings.Join(got, ","); g != want || a.Statistics.Returned != len(a.Results) {
			t.Errorf("%s: %q (returned %d of %d), want %q", q, g, a.Statistics.Returned, a.Statistics.All, want)
		}
	}
	code, body, _ := get(t, d.url+"/api/v1/events/count/priority", "")
	var counts struct {
		Results    map[string]int `json:"results"`
		Statistics struct{ All, Distincts int }
	}
	if err := json.Unmarshal([]byte(body), &counts); err != nil || code != 200 {
		t.Fatalf("count/priority: %d %s", code, body)
	}
	if counts.Results["Critical"] != 1 || counts.Results["Warning"] != 7 || counts.Results["Notice"] != 1 || counts.Statistics.All != 9 || counts.Statistics.Distincts != 3 {
		t.Errorf("count/priority: %s", body)
	}
	if code, body, _ = get(t, d.url+"/api/v1/events/count/tags?source=syscall", ""); code != 200 || !strings.Contains(body, `"shared":2`) {
		t.Errorf("count/tags: %d %s", code, body)
	}
	if code, body, _ = get(t, d.url+"/api/v1/events/count?rule=Rule%20Beta,Rule%20Gamma", ""); code != 200 || !strings.Contains(body, `"all":2`) {
		t.Errorf("count: %d %s", code, body)
	}
	for q, reason := range map[string]string{
		"/api/v1/events/count/uuid":             "cannot group by",
		"/api/v1/events/search?since=yesterday": "expected a duration",
		"/api/v1/events/search?since=5parsecs":  "unknown unit",
		"/api/v1/events/search?limit=ten":       "is not a number",
		"/api/v1/events/search?page=99999999":   "page 99999999",
		"/api/v1/events/search?priority=urgent": "is not one of emergency",
		"/api/v1/events/not-a-uuid":             "is not a uuid",
	} {
		code, body, _ := get(t, d.url+q, "")
		if code != 400 || !strings.Contains(body, reason) {
			t.Errorf("%s: %d %s, want 400 with %q", q, code, body, reason)
		}
	}
	if a := search(t, d, "limit=10000000"); a.Statistics.Returned != 9 {
		t.Errorf("huge limit: %+v", a.Statistics)
	}

	// One event by uuid, with the outputs it was queued for.
	id := all.Results[1]["uuid"].(string)
	code, body, _ = get(t, d.url+"/api/v1/events/"+id, "")
	var one struct {
		Event   map[string]any `json:"event"`
		Outputs []string       `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(body), &one); err != nil || code != 200 || one.Event["uuid"] != id || len(one.Outputs) != 1 || one.Outputs[0] != "webhook" {
		t.Errorf("event by uuid: %d %s", code, body)
	}
	if code, _, _ = get(t, d.url+"/api/v1/events/00000000-0000-4000-8000-000000000000", ""); code != 404 {
		t.Errorf("unknown uuid: %d", code)
	}
	code, body, _ = get(t, d.url+"/api/v1/outputs", "")
	if code != 200 || !strings.Contains(body, `"name":"webhook"`) || !strings.Contains(body, `"queue_depth":`) || !strings.Contains(body, `"events":9`) {
		t.Errorf("outputs: %d %s", code, body)
	}
	code, body, _ = get(t, d.url+"/api/v1/events/export?format=csv&priority=critical", "")
	if code != 200 || !strings.HasPrefix(body, "time,priority,rule") || strings.Count(body, "\n") != 2 {
		t.Errorf("csv export: %d %s", code, body)
	}
}

// TestUIPostFromFalcosidekick: falcosidekick-ui's POST /api/v1/ stores the event without
// delivering it again; a broken body gets 400.
func TestUIPostFromFalcosidekick(t *testing.T) {
	s := newSink(t, nil)
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL)
	body := `{"event":` + uiEvent("From Sidekick", "Error", "relayed") + `,"outputs":["slack","loki"]}`
	if code, resp := d.post(t, "/api/v1/", body); code != 200 {
		t.Fatalf("POST /api/v1/: %d %s", code, resp)
	}
	var a searchAnswer
	testpeers.Eventually(t, deadline, func() bool { a = search(t, d, "rule=From%20Sidekick"); return a.Statistics.All == 1 }, "relayed event stored")
	code, resp, _ := get(t, d.url+"/api/v1/events/"+a.Results[0]["uuid"].(string), "")
	if code != 200 || !strings.Contains(resp, `"outputs":["slack","loki"]`) {
		t.Errorf("relayed event: %d %s", code, resp)
	}
	s.none(t)
	for _, bad := range []string{`{"outputs":[]}`, `{"event":{"rule":"x"}}`, `not json`} {
		if code, resp := d.post(t, "/api/v1/", bad); code != 400 {
			t.Errorf("POST /api/v1/ %s: %d %s, want 400", bad, code, resp)
		}
	}
}

// TestUIStream: a client of the event stream receives each event stored after it connected.
func TestUIStream(t *testing.T) {
	d := start(t)
	resp, err := http.Get(d.url + "/api/v1/events/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if l := <-lines; !strings.HasPrefix(l, ":") { // the stream's opening comment: subscribed
		t.Fatalf("first line %q", l)
	}
	d.mustPost(t, uiEvent("Streamed Rule", "Alert", "live"))
	timeout := time.After(deadline)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream closed")
			}
			if strings.HasPrefix(l, "data: ") && strings.Contains(l, "Streamed Rule") {
				return
			}
		case <-timeout:
			t.Fatal("no event on the stream")
		}
	}
}

// TestUIListenPortAndPages: UI_LISTENPORT serves the pages and the API (and nothing else);
// the pages carry a strict Content-Security-Policy.
func TestUIListenPortAndPages(t *testing.T) {
	uiPort := testpeers.FreePort(t)
	d := start(t, fmt.Sprintf("UI_LISTENPORT=%d", uiPort))
	ui := fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	d.mustPost(t, falcoEvent)
	for _, base := range []string{d.url, ui} {
		for _, p := range []string{"/ui/", "/ui/events", "/ui/events/00000000-0000-4000-8000-000000000000", "/ui/outputs"} {
			code, body, h := get(t, base+p, "")
			csp := h.Get("Content-Security-Policy")
			if code != 200 || !strings.Contains(body, `src="/ui/assets/app.js"`) || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("%s%s: %d CSP %q", base, p, code, csp)
			}
		}
		if code, body, _ := get(t, base+"/ui/assets/app.js", ""); code != 200 || !strings.Contains(body, "textContent") {
			t.Errorf("%s app.js: %d", base, code)
		}
		testpeers.Eventually(t, deadline, func() bool {
			_, body, _ := get(t, base+"/api/v1/events/count", "")
			return strings.Contains(body, `"all":1`)
		}, "count on %s", base)
	}
	if code, _, _ := get(t, ui+"/metrics", ""); code != 404 {
		t.Errorf("UI port serves /metrics: %d", code)
	}
}

// TestUIAuth: the UI follows auth.* unless ui.auth.* is set; no default password.
func TestUIAuth(t *testing.T) {
	t.Run("inputs' token", func(t *testing.T) {
		uiPort := testpeers.FreePort(t)
		d := start(t, "AUTH_TOKEN=in-token", fmt.Sprintf("UI_LISTENPORT=%d", uiPort))
		for _, base := range []string{d.url, fmt.Sprintf("http://127.0.0.1:%d", uiPort)} {
			for _, p := range []string{"/ui/", "/api/v1/events/search", "/api/v1/outputs"} {
				if code, _, h := get(t, base+p, ""); code != 401 || h.Get("WWW-Authenticate") == "" {
					t.Errorf("%s%s without token: %d", base, p, code)
				}
				if code, _, _ := get(t, base+p, "Bearer in-token"); code != 200 {
					t.Errorf("%s%s with token: %d", base, p, code)
				}
			}
		}
	})
	t.Run("ui.auth", func(t *testing.T) {
		d := start(t, "AUTH_TOKEN=in-token", "UI_AUTH_BASIC_USER=alice", "UI_AUTH_BASIC_PASSWORD=s3cret")
		alice := "Basic YWxpY2U6czNjcmV0" // alice:s3cret
		if code, _, _ := get(t, d.url+"/api/v1/events/search", alice); code != 200 {
			t.Errorf("UI credentials: %d", code)
		}
		if code, _, _ := get(t, d.url+"/api/v1/events/search", "Bearer in-token"); code != 401 {
			t.Errorf("inputs' token on the UI with ui.auth set: %d, want 401", code)
		}
		if code, body := d.postAuth(t, "/", alice, falcoEvent); code != 401 {
			t.Errorf("UI credentials on POST /: %d %s, want 401", code, body)
		}
	})
	t.Run("none", func(t *testing.T) {
		d := start(t)
		if code, _, _ := get(t, d.url+"/api/v1/events/search", ""); code != 200 {
			t.Errorf("open UI: %d", code)
		}
	})
}

// TestUIStoragePath: with ui.storage.path the events survive a restart.
func TestUIStoragePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ui.db")
	d := start(t, "UI_STORAGE_PATH="+path)
	d.mustPost(t, uiEvent("Persisted Rule", "Error", "kept"))
	testpeers.Eventually(t, deadline, func() bool { return search(t, d, "").Statistics.All == 1 }, "stored")
	if code := d.sigterm(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	d2 := start(t, "UI_STORAGE_PATH="+path)
	if a := search(t, d2, "rule=persisted%20rule"); a.Statistics.All != 1 {
		t.Fatalf("after restart: %+v", a.Statistics)
	}
}

// TestUIOutputsHealth: /api/v1/outputs counts retried attempts and dead-lettered events.
func TestUIOutputsHealth(t *testing.T) {
	s := newSink(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		switch {
		case n <= 2:
			w.WriteHeader(http.StatusInternalServerError) // twice, then delivered
			return
		case n == 3:
			return
		}
		w.WriteHeader(http.StatusBadRequest) // permanent: dead-lettered
	})
	dead := filepath.Join(t.TempDir(), "dead.jsonl")
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL, "DEADLETTER_PATH="+dead)
	d.mustPost(t, uiEvent("Retried Rule", "Error", "retried"))
	testpeers.Eventually(t, deadline, func() bool {
		_, body, _ := get(t, d.url+"/api/v1/outputs", "")
		return strings.Contains(body, `"delivered":1`)
	}, "delivered after two 500s")
	d.mustPost(t, uiEvent("Dead Rule", "Error", "dead"))
	var body string
	testpeers.Eventually(t, deadline, func() bool {
		_, body, _ = get(t, d.url+"/api/v1/outputs", "")
		return strings.Contains(body, `"dead_lettered":1`)
	}, "dead-lettered after a 400")
	if !strings.Contains(body, `"retried":2`) || !strings.Contains(body, `"failed":1`) {
		t.Errorf("outputs: %s", body)
	}
}

// TestUIStreamEndsAtShutdown: open event streams, on the main and the UI port, do not hold
// SIGTERM's drain (the UI listener would wait for them until its own timeout).
func TestUIStreamEndsAtShutdown(t *testing.T) {
	uiPort := testpeers.FreePort(t)
	d := start(t, "SHUTDOWNTIMEOUT=30s", fmt.Sprintf("UI_LISTENPORT=%d", uiPort))
	for _, base := range []string{d.url, fmt.Sprintf("http://127.0.0.1:%d", uiPort)} {
		resp, err := http.Get(base + "/api/v1/events/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		first := make([]byte, 1)
		if _, err := resp.Body.Read(first); err != nil {
			t.Fatal(err)
		}
	}
	begin := time.Now()
	if code := d.sigterm(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("shutdown took %s with streams open", took)
	}
}

// Two replicas on external JetStream: an alert posted to either shows in both UIs (each
// replica's inputs take only a share of the alerts behind a Service).
func TestUIReplicasShowEveryReplicasAlerts(t *testing.T) {
	port := testpeers.FreePort(t)
	bin := testpeers.Bin(t, "nats-server")
	testpeers.Start(t, "nats-server", []string{bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", t.TempDir()},
		nil, func() bool { return testpeers.PortOpen(port) }, 20*time.Second)
	out := newSink(t, nil)
	env := []string{"BUS_JETSTREAM_URL=nats://127.0.0.1:" + fmt.Sprint(port), "WEBHOOK_ADDRESS=" + out.srv.URL + "/"}
	a, b := start(t, env...), start(t, env...)
	a.mustPost(t, uiEvent("Posted to a", "Critical", "on replica a"))
	b.mustPost(t, uiEvent("Posted to b", "Warning", "on replica b"))
	for name, d := range map[string]*daemon{"a": a, "b": b} {
		testpeers.Eventually(t, deadline, func() bool { return search(t, d, "").Statistics.All == 2 },
			"replica %s's UI does not show both replicas' alerts", name)
	}
}
