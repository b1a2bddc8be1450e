package gcp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

const (
	testInstance   = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	chroniclePath  = "/v1beta/projects/saker-test/locations/europe/instances/" + testInstance + "/logTypes/FALCO_IDS/logs:import"
	chronicleScope = scopeCloudPlatform
)

// chronicleAPI is logs.import of the Chronicle API (v1beta), as strict as the API: POST to
// the instance's log type with a token, a body holding only inlineSource.logs, each log only
// data (base64, here a Falco event), logEntryTime and collectionTime (RFC 3339, collected
// after it happened).
type chronicleAPI struct {
	ts   *tokenServer
	logs atomic.Int32
}

type importBody struct {
	InlineSource *struct {
		Logs []struct {
			Data           *string `json:"data"`
			LogEntryTime   string  `json:"logEntryTime"`
			CollectionTime string  `json:"collectionTime"`
		} `json:"logs"`
	} `json:"inlineSource"`
}

func (c *chronicleAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !checkBearer(w, r, c.ts) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != chroniclePath {
		googleError(w, http.StatusNotFound, "NOT_FOUND", "Method not found: "+r.URL.Path)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Content-Type "+ct)
		return
	}
	var body importBody
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.InlineSource == nil || len(body.InlineSource.Logs) == 0 {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("Invalid JSON payload received. %v", err))
		return
	}
	for i, l := range body.InlineSource.Logs {
		if l.Data == nil {
			googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("logs[%d].data is required", i))
			return
		}
		raw, err := base64.StdEncoding.DecodeString(*l.Data)
		if err == nil {
			_, err = posttest.DecodeEvent(bytes.NewReader(raw))
		}
		if err != nil {
			googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("logs[%d].data: %v", i, err))
			return
		}
		entry, err1 := time.Parse(time.RFC3339Nano, l.LogEntryTime)
		collected, err2 := time.Parse(time.RFC3339Nano, l.CollectionTime)
		if err1 != nil || err2 != nil || !collected.After(entry) {
			googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("logs[%d]: collectionTime must follow logEntryTime", i))
			return
		}
	}
	c.logs.Add(int32(len(body.InlineSource.Logs)))
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, "{}")
}

// BodyText decodes the logs' data, so that the delivery checks find the events in it.
func (c *chronicleAPI) BodyText(b []byte) string {
	var body importBody
	if json.Unmarshal(b, &body) != nil || body.InlineSource == nil {
		return string(b)
	}
	var out []string
	for _, l := range body.InlineSource.Logs {
		if l.Data != nil {
			raw, _ := base64.StdEncoding.DecodeString(*l.Data)
			out = append(out, string(raw))
		}
	}
	return strings.Join(out, "\n")
}

func chronicleConfig(base, credentials string) *Config {
	c := defaults()
	c.Credentials = credentials
	c.Chronicle = ChronicleConfig{ProjectID: "saker-test", InstanceID: testInstance, Region: "europe",
		LogType: "FALCO_IDS", Endpoint: base}
	return c
}

func chronicleOutput(t *testing.T, base, credentials string) *Chronicle {
	t.Helper()
	o, err := NewChronicle(chronicleConfig(base, credentials), outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestChronicleGolden: the import of a recorded event (the data is the Falco JSON
// falcosidekick marshals; the log time is the event's), and of an event from the future,
// collected a second after it as falcosidekick does.
func TestChronicleGolden(t *testing.T) {
	var bodies [][]byte
	srv := posttest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		bodies = append(bodies, buf.Bytes())
		fmt.Fprint(w, "{}")
	}))
	o := chronicleOutput(t, srv.URL, "")
	o.now = func() time.Time { return time.Date(2024, 3, 15, 8, 30, 2, 500, time.UTC) }
	evs := goldens.Events(t, func(name string) string { return "0000-" + name })
	future := numbered(1)[0]
	future.Time = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, ev := range []*event.Event{evs["many_fields"], future} {
		if err := o.Send(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	goldens.Check(t, "testdata/chronicle_import.json", goldens.IndentJSON(t, bodies[0]))
	var req importRequest
	if err := json.Unmarshal(bodies[0], &req); err != nil {
		t.Fatal(err)
	}
	goldens.SameEventJSON(t, "gcpcloudrun", "many_fields", req.InlineSource.Logs[0].Data)
	if err := json.Unmarshal(bodies[1], &req); err != nil {
		t.Fatal(err)
	}
	if l := req.InlineSource.Logs[0]; l.LogEntryTime != "2030-01-01T00:00:00Z" || l.CollectionTime != "2030-01-01T00:00:01Z" {
		t.Errorf("event from the future: %+v", l)
	}
}

// TestChronicleStrict: the token reaches the API; a batch is one import of several logs; a
// wrong instance is a permanent 404.
func TestChronicleStrict(t *testing.T) {
	ts := newTokenServer(t, chronicleScope)
	api := &chronicleAPI{ts: ts}
	srv := posttest.Server(t, api)
	o := chronicleOutput(t, srv.URL, ts.credentialsValue(t))
	if err := o.SendBatch(context.Background(), numbered(5)); err != nil {
		t.Fatal(err)
	}
	if n := api.logs.Load(); n != 5 {
		t.Errorf("%d logs imported, want 5", n)
	}
	c := chronicleConfig(srv.URL, ts.credentialsValue(t))
	c.Chronicle.InstanceID = "other"
	other, err := NewChronicle(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Send(context.Background(), numbered(1)[0]); err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "404") {
		t.Errorf("wrong instance: %v", err)
	}
}

// TestChronicleDelivery: nothing is lost while the API is down; minimumpriority holds.
func TestChronicleDelivery(t *testing.T) {
	ts := newTokenServer(t, chronicleScope)
	key := ts.credentialsValue(t)
	posttest.Delivery(t, func(t *testing.T, base string) delivery.Sender { return chronicleOutput(t, base, key) },
		&chronicleAPI{ts: ts})
}
