package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/testpeers"
)

// writeAtomic replaces file with body by a rename, as a Kubernetes ConfigMap update does, so
// a reload never reads it half written.
func writeAtomic(t *testing.T, file, body string) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// seqSink is a webhook endpoint that answers 503 to every fifth request (so retries are in
// flight across reloads) and records the test.seq of the events it answered 200.
type seqSink struct {
	srv  *httptest.Server
	mu   sync.Mutex
	n    int
	seqs map[int]int
}

func newSeqSink(t *testing.T) *seqSink {
	t.Helper()
	s := &seqSink{seqs: map[int]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev struct {
			OutputFields map[string]any `json:"output_fields"`
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Errorf("sink: %v: %s", err, b)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.n++
		if s.n%5 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		seq, _ := ev.OutputFields["test.seq"].(float64)
		s.seqs[int(seq)]++
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *seqSink) snapshot() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.seqs)
}

// posted is one event the load generator posted.
type posted struct {
	seq        int
	start, end time.Time
	ok         bool
}

// TestReloadOutputsUnderLoad posts events without pause while POST /-/reload cycles through
// configurations that rebuild the webhook output (another address, another queue size and
// concurrency), add the file output and remove it again while its queue holds a backlog.
// Every event accepted reaches the webhook exactly once, at one sink or the other; every
// event accepted while the file output ran is in its file, once.
func TestReloadOutputsUnderLoad(t *testing.T) {
	for _, bus := range []string{"memory", "spool"} {
		t.Run(bus, func(t *testing.T) {
			var env []string
			if bus == "spool" {
				env = append(env, "SPOOL_PATH="+filepath.Join(t.TempDir(), "spool"))
			}
			reloadOutputsUnderLoad(t, env)
		})
	}
}

func reloadOutputsUnderLoad(t *testing.T, env []string) {
	s1, s2 := newSeqSink(t), newSeqSink(t)
	dir := t.TempDir()
	file, lines := filepath.Join(dir, "saker.yaml"), filepath.Join(dir, "events.jsonl")
	// A rate limit on every output keeps a backlog in the queues the reloads resize, move
	// to another address or drain.
	const retry = "retry:\n  initial: 5ms\n  max: 20ms\nratelimit:\n  rate: 400\n"
	configs := []struct {
		body string
		file bool // the file output runs
	}{
		{fmt.Sprintf("%swebhook:\n  address: %s\n", retry, s1.srv.URL), false},
		{fmt.Sprintf("%swebhook:\n  address: %s\nfile:\n  path: %s\n  ratelimit:\n    rate: 150\n", retry, s2.srv.URL, lines), true},
		{fmt.Sprintf("%swebhook:\n  address: %s\n  queuesize: 64\n  maxconcurrentrequests: 2\n", retry, s2.srv.URL), false},
	}
	writeAtomic(t, file, configs[0].body)
	port := testpeers.FreePort(t)
	d := startWithArgs(t, fmt.Sprintf("http://127.0.0.1:%d/ping", port), []string{"-c", file},
		append([]string{"LISTENADDRESS=127.0.0.1", fmt.Sprintf("LISTENPORT=%d", port)}, env...)...)
	d.url = fmt.Sprintf("http://127.0.0.1:%d", port)

	var mu sync.Mutex
	var events []posted
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		client := &http.Client{Timeout: 10 * time.Second}
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			p := posted{seq: seq, start: time.Now()}
			resp, err := client.Post(d.url+"/", "application/json", strings.NewReader(eventWith(t, "Error", seq)))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				p.ok = resp.StatusCode == http.StatusOK
			}
			p.end = time.Now()
			mu.Lock()
			events = append(events, p)
			mu.Unlock()
		}
	}()

	// fileRuns are the spans during which the file output certainly ran: from the end of
	// the reload adding it to the start of the one removing it.
	type span struct{ from, to time.Time }
	var fileRuns []span
	var fileFrom time.Time
	reload := func(i int) {
		t.Helper()
		c := configs[i%len(configs)]
		writeAtomic(t, file, c.body)
		started := time.Now()
		until := started.Add(deadline)
		for {
			code, body := d.post(t, "/-/reload", "")
			if code == http.StatusOK {
				break
			}
			// Adding back an output still draining its removal is refused until it drained.
			if code != http.StatusBadRequest || !strings.Contains(body, "still draining") || time.Now().After(until) {
				t.Fatalf("reload %d: %d %s", i, code, body)
			}
			time.Sleep(10 * time.Millisecond)
		}
		switch {
		case c.file && fileFrom.IsZero():
			fileFrom = time.Now()
		case !c.file && !fileFrom.IsZero():
			fileRuns = append(fileRuns, span{fileFrom, started})
			fileFrom = time.Time{}
		}
	}
	time.Sleep(50 * time.Millisecond)
	for i := 1; i <= 7; i++ {
		reload(i)
		time.Sleep(40 * time.Millisecond)
	}
	close(stop)
	<-loadDone

	mu.Lock()
	defer mu.Unlock()
	accepted := 0
	for _, p := range events {
		if p.ok {
			accepted++
		}
	}
	if accepted < 50 {
		t.Fatalf("only %d events accepted", accepted)
	}
	// Every accepted event reaches the webhook once, at either sink. On a machine so busy
	// that the rate-limited webhook is slower than usual, the wait goes on while deliveries
	// progress: a lost event shows as no progress for the whole deadline.
	until, lastMissing := time.Now().Add(deadline), -1
	for {
		got := s1.snapshot()
		for seq, n := range s2.snapshot() {
			got[seq] += n
		}
		missing, twice := 0, 0
		for _, p := range events {
			switch n := got[p.seq]; {
			case p.ok && n == 0:
				missing++
			case n > 1:
				twice++
				t.Errorf("seq %d delivered %d times to the webhook", p.seq, n)
			}
		}
		if twice > 0 {
			break
		}
		if missing == 0 {
			break
		}
		if missing != lastMissing {
			until, lastMissing = time.Now().Add(deadline), missing
		}
		if time.Now().After(until) {
			t.Fatalf("%d of %d accepted events never reached the webhook (none delivered for %s)", missing, accepted, deadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every event accepted while the file output certainly ran is in its file, once. The
	// removal drained its queue, so the file is complete once /healthz shows no draining.
	waitNotDraining(t, d, "file")
	inFile := map[int]int{}
	f, err := os.Open(lines)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			OutputFields map[string]any `json:"output_fields"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("file line %q: %v", sc.Text(), err)
		}
		seq, _ := ev.OutputFields["test.seq"].(float64)
		inFile[int(seq)]++
	}
	if len(fileRuns) < 2 {
		t.Fatalf("the file output ran %d times, want 2", len(fileRuns))
	}
	checked := 0
	for _, p := range events {
		if n := inFile[p.seq]; n > 1 {
			t.Errorf("seq %d written %d times to the file", p.seq, n)
		}
		for _, r := range fileRuns {
			if p.ok && p.start.After(r.from) && p.end.Before(r.to) {
				checked++
				if inFile[p.seq] == 0 {
					t.Errorf("seq %d accepted while the file output ran is not in its file", p.seq)
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no event was posted while the file output ran")
	}
	t.Logf("%d events accepted, %d in the file's runs, %d lines in the file", accepted, checked, len(inFile))
	if code := d.sigterm(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// waitNotDraining waits until /healthz no longer shows output draining.
func waitNotDraining(t *testing.T, d *daemon, output string) {
	t.Helper()
	until := time.Now().Add(deadline)
	for {
		resp, err := http.Get(d.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Outputs []map[string]any `json:"outputs"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		draining := false
		for _, o := range body.Outputs {
			draining = draining || o["name"] == output && o["state"] == "draining"
		}
		if !draining {
			return
		}
		if time.Now().After(until) {
			t.Fatalf("%s still draining after %s", output, deadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReloadRules: a reload swaps the audit rules; a rule file with an error is refused with
// its reason (file and line) logged and answered, and the running rules keep alerting.
func TestReloadRules(t *testing.T) {
	s := newSink(t, nil)
	dir := t.TempDir()
	file, ruleFile := filepath.Join(dir, "saker.yaml"), filepath.Join(dir, "rules.yaml")
	rule := func(name string) string {
		return fmt.Sprintf("- rule: %s\n  desc: test\n  condition: ka.verb=create and ka.target.resource=configmaps\n"+
			"  output: \"%s %%ka.target.name\"\n  priority: WARNING\n  source: k8s_audit\n", name, name)
	}
	writeAtomic(t, ruleFile, rule("Configmap created v1"))
	writeAtomic(t, file, fmt.Sprintf("webhook:\n  address: %s\nrules:\n  defaults: false\n  files: [%s]\n", s.srv.URL, ruleFile))
	port := testpeers.FreePort(t)
	d := startWithArgs(t, fmt.Sprintf("http://127.0.0.1:%d/ping", port), []string{"-c", file},
		"LISTENADDRESS=127.0.0.1", fmt.Sprintf("LISTENPORT=%d", port))
	d.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	alertRule := func() string {
		t.Helper()
		if code, body := d.post(t, "/k8s-audit", auditEvent); code != http.StatusOK {
			t.Fatalf("POST /k8s-audit: %d %s", code, body)
		}
		var ev struct{ Rule string }
		if err := json.Unmarshal(s.next(t).body, &ev); err != nil {
			t.Fatal(err)
		}
		return ev.Rule
	}
	if got := alertRule(); got != "Configmap created v1" {
		t.Fatalf("alert of rule %q", got)
	}
	writeAtomic(t, ruleFile, rule("Configmap created v2")+"- rule: Broken\n  desc: x\n  condition: ka.verb=create and (\n  output: x\n  priority: INFO\n  source: k8s_audit\n")
	code, body := d.post(t, "/-/reload", "")
	if code != http.StatusBadRequest || !strings.Contains(body, "rules.yaml:9") {
		t.Fatalf("broken rule file: %d %s", code, body)
	}
	d.waitLogged(t, "configuration reload refused", "rules.yaml:9") // the refused rule file's reason
	if got := alertRule(); got != "Configmap created v1" {
		t.Fatalf("after a refused reload: alert of rule %q, want the running v1", got)
	}
	writeAtomic(t, ruleFile, rule("Configmap created v2"))
	if code, body := d.post(t, "/-/reload", ""); code != http.StatusOK {
		t.Fatalf("valid rule file: %d %s", code, body)
	}
	if got := alertRule(); got != "Configmap created v2" {
		t.Fatalf("after the reload: alert of rule %q, want v2", got)
	}
}

// TestReloadRefusesAnOutputThatCannotBeBuilt: every output a reload adds or changes is
// built before anything applies, so one that cannot be built refuses the whole reload: the
// webhook's new filter in the same file is not applied either.
func TestReloadRefusesAnOutputThatCannotBeBuilt(t *testing.T) {
	s := newSink(t, nil)
	d, _ := startWithFilterFile(t, s, "priority >= critical")
	file := d.cmd.Args[2] // -c FILE
	writeAtomic(t, file, fmt.Sprintf("webhook:\n  address: %s\n  filter: 'priority >= warning'\nfile:\n  path: %s\n",
		s.srv.URL, filepath.Join(t.TempDir(), "missing", "events.jsonl")))
	code, body := d.post(t, "/-/reload", "")
	if code != http.StatusBadRequest || !strings.Contains(body, "output file: file.path") {
		t.Fatalf("reload with an output that cannot be built: %d %s", code, body)
	}
	d.mustPost(t, eventWith(t, "Error", 1)) // filtered by the running filter
	d.mustPost(t, eventWith(t, "Critical", 2))
	if got := seqOf(t, s.next(t)); got != 2 {
		t.Fatalf("delivered seq %d, want 2: the refused reload changed the filter", got)
	}
	if h := healthOf(t, d, "webhook"); h["filtered"] != float64(1) {
		t.Errorf("/healthz filtered = %v, want 1", h["filtered"])
	}
	if out := d.stderr.String(); !strings.Contains(out, "configuration reload refused") || strings.Contains(out, "configuration reloaded") {
		t.Errorf("log:\n%s", out)
	}
}

// A reload that changes what only a restart applies says so, section by section: here the
// web UI's retention.
func TestReloadWarnsRestartOnlyChanges(t *testing.T) {
	file := filepath.Join(t.TempDir(), "saker.yaml")
	writeAtomic(t, file, "ui:\n  retention:\n    maxevents: 1000\n")
	port := testpeers.FreePort(t)
	d := startWithArgs(t, fmt.Sprintf("http://127.0.0.1:%d/ping", port), []string{"-c", file},
		"LISTENADDRESS=127.0.0.1", fmt.Sprintf("LISTENPORT=%d", port))
	d.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	const warning = "the ui section (web UI, its store, listener and credentials) changed; they apply after a restart"
	if code, body := d.post(t, "/-/reload", ""); code != http.StatusOK || strings.Contains(d.stderr.String(), warning) {
		t.Fatalf("unchanged reload: %d %s, or warned:\n%s", code, body, d.stderr.String())
	}
	writeAtomic(t, file, "ui:\n  retention:\n    maxevents: 2000\n")
	if code, body := d.post(t, "/-/reload", ""); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	d.waitLogged(t, warning) // ui.* applies after a restart
}
