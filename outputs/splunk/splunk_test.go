package splunk

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

const hecPath = "/services/collector/event"

func newOutput(t *testing.T, host string) *falcopost.Output {
	t.Helper()
	c := defaults()
	c.Host, c.Token = host, "stok"
	s, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPayloadGolden checks each HEC body against saker's golden file and against what
// falcosidekick sent: the same event (the Falco JSON) and sourcetype; saker adds the event
// time and host.
func TestPayloadGolden(t *testing.T) {
	evs := goldens.Events(t, func(n string) string { return "<VARIES>" })
	s := defaults()
	s.Host, s.Token = "http://splunk.example:8088"+hecPath, "stok"
	for _, name := range goldens.Names(evs) {
		t.Run(name, func(t *testing.T) {
			body := s.Payload(evs[name])
			goldens.Check(t, filepath.Join("testdata", name+".json"), goldens.IndentJSON(t, body))
			fsk, ours := chattest.Falcosidekick(t, "splunk", name), chattest.Decode(t, body)
			fe, oe := fsk["event"].(map[string]any), ours["event"].(map[string]any)
			goldens.NormalizeTime(fe)
			goldens.NormalizeTime(oe)
			if b1, b2 := mustJSON(fe), mustJSON(oe); b1 != b2 {
				t.Errorf("event\n%s\nfalcosidekick sends\n%s", b2, b1)
			}
			if ours["sourcetype"] != fsk["sourcetype"] {
				t.Errorf("sourcetype %v", ours["sourcetype"])
			}
			if ts := ours["time"].(float64); time.UnixMicro(int64(ts*1e6+0.5)).Sub(evs[name].Time).Abs() > time.Microsecond {
				t.Errorf("time %f, event %v", ts, evs[name].Time)
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// endpoint is a HEC as strict as Splunk's: the token in the Authorization header, one JSON
// event object with "event" and a numeric "time"; it answers {"text":"Success","code":0}.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if r.Header.Get("Authorization") != "Splunk stok" {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"text":"Invalid token","code":4}`))
		return
	}
	var m struct {
		Event      map[string]any `json:"event"`
		Time       float64        `json:"time"`
		Host       string         `json:"host"`
		Index      string         `json:"index"`
		SourceType string         `json:"sourcetype"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || r.URL.Path != hecPath || m.Event == nil || m.Time <= 0 {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"text":"Invalid data format","code":6,"invalid-event-number":0}`))
		return
	}
	_, _ = w.Write([]byte(`{"text":"Success","code":0}`))
}

func TestSendToStrictEndpoint(t *testing.T) {
	srv := httptest.NewServer(endpoint{})
	defer srv.Close()
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		if err := newOutput(t, srv.URL+hecPath).Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	c := defaults()
	c.Host, c.Token = srv.URL+hecPath, "STALETOKEN"
	stale, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := stale.Send(context.Background(), evs["readme_try_event"]); err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "STALETOKEN") {
		t.Fatalf("want a permanent error without the token, got %v", err)
	}
}

func TestDownThenUpLosesNothing(t *testing.T) {
	deliverytest.DownThenUp(t, func(base string) delivery.Output { return newOutput(t, base+hecPath) }, endpoint{})
}

// TestMinimumPriority: splunk.minimumpriority keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newOutput(t, base+hecPath) }, endpoint{})
}

func TestValidate(t *testing.T) {
	for key, mod := range map[string]func(*Config){
		"splunk.host":          func(c *Config) { c.Host = "splunk:8088" + hecPath },
		"splunk.token":         func(c *Config) { c.Token = "" },
		"splunk.customheaders": func(c *Config) { c.CustomHeaders = map[string]string{"X Bad": "SECRETVALUE"} },
	} {
		c := defaults()
		c.Host, c.Token = "https://splunk:8088"+hecPath, "SECRETTOKEN"
		mod(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Validate() = %v, want an error naming %s without secrets", err, key)
		}
	}
}
