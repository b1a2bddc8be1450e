package nodered

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

// newOutput has the settings of falcosidekick's recordings (NODERED_USER=u,
// NODERED_PASSWORD=p) and a custom header.
func newOutput(t *testing.T, base string) delivery.Sender {
	t.Helper()
	return build(t, base, "p")
}

func build(t *testing.T, base, password string) delivery.Sender {
	t.Helper()
	c := defaults()
	c.Address, c.User, c.Password = base+"/nodered", "u", password
	c.CustomHeaders = map[string]string{"X-Falco-Cluster": "prod"}
	o, err := New(c, outputs.Env{})
	return posttest.Must(t, o, err)
}

// endpoint stands in for Node-RED where a real one is not needed: an http in node at
// /nodered behind httpNodeAuth u/p (401 otherwise, as Node-RED's basic-auth middleware),
// Express's "Cannot POST" 404 for other paths, its JSON body parser's 400 for bad JSON.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
		w.Header().Set("WWW-Authenticate", `Basic realm="Authorization Required"`)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/nodered" {
		http.Error(w, "Cannot "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	if _, err := posttest.DecodeEvent(r.Body); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return
	}
	_, _ = w.Write([]byte("recorded"))
}

// TestPayloadGolden: the Falco JSON to the same path as falcosidekick, with the same basic
// authentication.
func TestPayloadGolden(t *testing.T) {
	posttest.Check(t, posttest.Golden{Variant: "nodered", Output: newOutput, Endpoint: endpoint{},
		Headers: []string{"Authorization", "Content-Type"},
		More: func(t *testing.T, c posttest.Case) {
			if got := c.Ours.Header.Get("X-Falco-Cluster"); got != "prod" {
				t.Errorf("custom header X-Falco-Cluster = %q", got)
			}
		}})
}

// TestDelivery: nothing is lost while the service is down, and nodered.minimumpriority keeps lower
// events out.
func TestDelivery(t *testing.T) { posttest.Delivery(t, newOutput, endpoint{}) }

// nodeRED is a running Node-RED 4.1.8 with the flow of testdata/flows.json: an http in
// node at POST /nodered behind basic authentication u/p that appends each request's headers
// and parsed body to a file, then answers 200.
type nodeRED struct {
	*testpeers.Proc
	records string
}

func startNodeRED(t *testing.T, port int) *nodeRED {
	t.Helper()
	testpeers.Need(t, "node-red")
	red := filepath.Join(testpeers.Dir(), "node-red", "node_modules", "node-red", "red.js")
	if _, err := os.Stat(red); err != nil {
		t.Fatalf("Node-RED not installed at %s: run .ci/install-peers.sh", red)
	}
	node := testpeers.Bin(t, "node")
	dir := t.TempDir()
	records := filepath.Join(dir, "records.jsonl")
	flows, err := os.ReadFile(filepath.Join("testdata", "flows.json"))
	if err != nil {
		t.Fatal(err)
	}
	recordsJSON, _ := json.Marshal(records)
	flows = bytes.ReplaceAll(flows, []byte(`"RECORDS"`), recordsJSON)
	if err := os.WriteFile(filepath.Join(dir, "flows.json"), flows, 0o600); err != nil {
		t.Fatal(err)
	}
	settings, err := filepath.Abs(filepath.Join("testdata", "settings.js"))
	if err != nil {
		t.Fatal(err)
	}
	ready := func() bool {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/ready", port), nil)
		req.SetBasicAuth("u", "p")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	p := testpeers.Start(t, "node-red", []string{node, red, "--settings", settings, "--userDir", dir, "flows.json"},
		[]string{fmt.Sprintf("SAKER_NODERED_PORT=%d", port), "SAKER_NODERED_DIR=" + dir}, ready, 60*time.Second)
	return &nodeRED{Proc: p, records: records}
}

type record struct {
	Headers map[string]string `json:"headers"`
	Body    map[string]any    `json:"body"`
}

func (n *nodeRED) read(t *testing.T) []record {
	t.Helper()
	b, err := os.ReadFile(n.records)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("record %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// TestRealNodeRED sends the 8 recorded events through the delivery engine to a real
// Node-RED, started only after they were queued (nothing listened when they were first
// sent): the flow must record each exactly once, as the same Falco event, with the basic
// authentication and custom header; a wrong password is a permanent 401.
func TestRealNodeRED(t *testing.T) {
	testpeers.Need(t, "node-red")
	port := testpeers.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	eng := deliverytest.Start(t, newOutput(t, base), deliverytest.Policy(""))
	evs := goldens.Events(t, func(name string) string { return "uuid-" + name })
	names := goldens.Names(evs)
	for _, name := range names {
		deliverytest.Publish(t, eng, evs[name])
	}
	deliverytest.WaitFailing(t, eng)
	red := startNodeRED(t, port)
	testpeers.Eventually(t, 30*time.Second, func() bool { return len(red.read(t)) >= len(names) },
		"Node-RED recorded fewer than %d events:\n%s", len(names), red.Output())
	if lost := eng.Stop(5 * time.Second); lost > 0 {
		t.Errorf("%d events given up", lost)
	}
	got := map[string]record{}
	for _, r := range red.read(t) {
		uuid, _ := r.Body["uuid"].(string)
		if _, dup := got[uuid]; dup {
			t.Errorf("event %s recorded twice", uuid)
		}
		got[uuid] = r
		if r.Headers["authorization"] != "Basic dTpw" || r.Headers["x-falco-cluster"] != "prod" {
			t.Errorf("event %s: headers %v", uuid, r.Headers)
		}
	}
	for _, name := range names {
		r, ok := got["uuid-"+name]
		if !ok {
			t.Errorf("event %s not recorded", name)
			continue
		}
		var want any
		dec := json.NewDecoder(bytes.NewReader(evs[name].JSON()))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		// Node-RED parsed the body with JSON.parse and wrote it with JSON.stringify.
		var body any
		b, _ := json.Marshal(r.Body)
		dec = json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			t.Fatal(err)
		}
		posttest.SameJSON(t, name, want, body)
	}
	err := build(t, base, "WRONGPASS").Send(context.Background(), evs[names[0]])
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong password: want a permanent 401, got %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Address: "node-red:1880/SECRETPATH"}, "nodered.address"},
		{Config{Address: "http://node-red:1880/falco", Password: "SECRETPW"}, "nodered.user is empty"},
		{Config{Address: "http://node-red:1880/falco", CustomHeaders: map[string]string{"X-A": "SECRET\nX"}}, "nodered.customheaders"},
	} {
		posttest.Refused(t, tc.c.Validate(), tc.want)
	}
}
