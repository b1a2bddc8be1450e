package dynatrace

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
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

func newOutput(t *testing.T, apiURL, token string) *falcopost.Output {
	t.Helper()
	d, err := New(&Config{APIToken: token, APIURL: apiURL, CheckCert: true}, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPayloadGolden checks each record against saker's golden file and against what
// falcosidekick sent: the same attributes and content, the timestamp being the same instant
// (falcosidekick dropped its fraction of a second).
func TestPayloadGolden(t *testing.T) {
	evs := goldens.Events(t, func(string) string { return "<VARIES>" })
	for _, name := range goldens.Names(evs) {
		t.Run(name, func(t *testing.T) {
			body, err := chat.EncodeJSON([]map[string]any{Build(evs[name])})
			if err != nil {
				t.Fatal(err)
			}
			goldens.Check(t, filepath.Join("testdata", name+".json"), goldens.IndentJSON(t, body))
			var fsk, ours []map[string]any
			if err := json.Unmarshal([]byte(goldens.Recorded(t, "dynatrace", name).Body), &fsk); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(body, &ours); err != nil {
				t.Fatal(err)
			}
			for k, v := range fsk[0] {
				got := ours[0][k]
				if k == "timestamp" {
					a, _ := time.Parse(time.RFC3339, v.(string))
					b, _ := time.Parse(time.RFC3339Nano, got.(string))
					if !b.Truncate(time.Second).Equal(a) {
						t.Errorf("timestamp %v, falcosidekick sends %v", got, v)
					}
					continue
				}
				if a, b := mustJSON(v), mustJSON(got); a != b {
					t.Errorf("%s = %s, falcosidekick sends %s", k, b, a)
				}
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestSemanticAttributes: well-known fields of any JSON type and MITRE tags become
// Dynatrace attributes.
func TestSemanticAttributes(t *testing.T) {
	r := Build(&event.Event{Rule: "r", Priority: event.Notice, Time: time.Now(), Tags: []string{"T1055.008", "mitre_execution"},
		OutputFields: map[string]any{"proc.name": "sh", "k8s.pod.id": json.Number("42"), "container.id": nil}})
	if r["process.executable.name"] != "sh" || r["k8s.pod.uid"] != "42" || r["mitre.technique"] != "T1055.008" || r["mitre.tactic"] != "mitre_execution" {
		t.Errorf("attributes %v", r)
	}
	if _, ok := r["container.id"]; ok {
		t.Errorf("a null field became an attribute")
	}
}

// endpoint is log ingest as strict as Dynatrace's: the token it knows, a JSON array of
// records each with content and a parseable timestamp; it answers 204.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Api-Token dtok" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":401,"message":"Token Authentication failed"}}`))
		return
	}
	var records []map[string]any
	if err := json.NewDecoder(r.Body).Decode(&records); err != nil || r.URL.Path != "/e/ENV/api/v2/logs/ingest" || len(records) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"code":400,"message":"Invalid payload"}}`))
		return
	}
	for _, rec := range records {
		ts, _ := rec["timestamp"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || rec["content"] == nil {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":{"code":400,"message":"Invalid record"}}`))
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestSendToStrictEndpoint(t *testing.T) {
	srv := httptest.NewServer(endpoint{})
	defer srv.Close()
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		if err := newOutput(t, srv.URL+"/e/ENV/api", "dtok").Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	err := newOutput(t, srv.URL+"/e/ENV/api", "OLDTOKEN").Send(context.Background(), evs["readme_try_event"])
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "OLDTOKEN") {
		t.Fatalf("want a permanent error without the token, got %v", err)
	}
}

func TestDownThenUpLosesNothing(t *testing.T) {
	deliverytest.DownThenUp(t, func(base string) delivery.Output { return newOutput(t, base+"/e/ENV/api", "dtok") }, endpoint{})
}

// TestMinimumPriority: dynatrace.minimumpriority keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newOutput(t, base+"/e/ENV/api", "dtok") }, endpoint{})
}

func TestValidate(t *testing.T) {
	if err := (&Config{APIToken: "SECRET"}).Validate(); err == nil || !strings.Contains(err.Error(), "dynatrace.apiurl") {
		t.Errorf("Validate() = %v", err)
	}
	if err := (&Config{APIToken: "SECRET", APIURL: "abc.live.dynatrace.com/api"}).Validate(); err == nil || !strings.Contains(err.Error(), "dynatrace.apiurl") || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("Validate() = %v", err)
	}
}
