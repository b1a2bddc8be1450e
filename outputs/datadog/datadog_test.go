package datadog

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

func newEvents(t *testing.T, host, key string) *falcopost.Output {
	t.Helper()
	e, err := NewEvents(&Config{APIKey: key, Host: host, CheckCert: true}, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newLogs(t *testing.T, host, key string) *falcopost.Output {
	t.Helper()
	l, err := NewLogs(&LogsConfig{APIKey: key, Host: host, Service: "svc", CheckCert: true}, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestEventsGolden checks each Datadog event against saker's golden file and against what
// falcosidekick sent: the same title, text, alert type and source, and every tag it sent
// (saker also tags non-string output fields, which falcosidekick dropped).
func TestEventsGolden(t *testing.T) {
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		t.Run(name, func(t *testing.T) {
			body, err := chat.EncodeJSON(BuildEvent(evs[name]))
			if err != nil {
				t.Fatal(err)
			}
			goldens.Check(t, filepath.Join("testdata", "datadog", name+".json"), goldens.IndentJSON(t, body))
			fsk, ours := chattest.Falcosidekick(t, "datadog", name), chattest.Decode(t, body)
			for _, k := range []string{"title", "text", "alert_type", "source_type_name"} {
				if ours[k] != fsk[k] {
					t.Errorf("%s = %v, falcosidekick sends %v", k, ours[k], fsk[k])
				}
			}
			var tags []string
			for _, tag := range ours["tags"].([]any) {
				tags = append(tags, tag.(string))
			}
			for _, tag := range fsk["tags"].([]any) {
				if !slices.Contains(tags, tag.(string)) {
					t.Errorf("tag %q missing from %v", tag, tags)
				}
			}
		})
	}
}

// TestLogsGolden checks each log against saker's golden file and against what falcosidekick
// sent: the same source, hostname and service, and the Falco JSON as the message.
func TestLogsGolden(t *testing.T) {
	evs := goldens.Events(t, func(string) string { return "<VARIES>" })
	for _, name := range goldens.Names(evs) {
		t.Run(name, func(t *testing.T) {
			body, err := chat.EncodeJSON(BuildLog("svc", evs[name]))
			if err != nil {
				t.Fatal(err)
			}
			goldens.Check(t, filepath.Join("testdata", "datadoglogs", name+".json"), goldens.IndentJSON(t, body))
			fsk, ours := chattest.Falcosidekick(t, "datadoglogs", name), chattest.Decode(t, body)
			for _, k := range []string{"ddsource", "hostname", "service"} {
				if ours[k] != fsk[k] {
					t.Errorf("%s = %v, falcosidekick sends %v", k, ours[k], fsk[k])
				}
			}
			fm, om := chattest.Decode(t, []byte(fsk["message"].(string))), chattest.Decode(t, []byte(ours["message"].(string)))
			goldens.NormalizeTime(fm)
			goldens.NormalizeTime(om)
			if a, b := mustJSON(fm), mustJSON(om); a != b {
				t.Errorf("message\n%s\nfalcosidekick sends\n%s", b, a)
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// eventsEndpoint is the events API as strict as Datadog's: the API key in the query, the
// known fields, a title and a valid alert type; it answers 202.
type eventsEndpoint struct{}

func (eventsEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("api_key") != "ddkey" {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"errors": ["Forbidden"]}`))
		return
	}
	var e Event
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || r.URL.Path != "/api/v1/events" || e.Title == "" || !slices.Contains([]string{"error", "warning", "info", "success"}, e.AlertType) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"errors": ["Invalid event"]}`))
		return
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status": "ok"}`))
}

// logsEndpoint is the logs intake as strict as Datadog's: DD-API-KEY, the known fields and a
// message; it answers 202 {}.
type logsEndpoint struct{}

func (logsEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("DD-API-KEY") != "ddkey" {
		http.Error(w, `{"errors":[{"status":"403","title":"Forbidden"}]}`, http.StatusForbidden)
		return
	}
	var l Log
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil || r.URL.Path != "/api/v2/logs" || l.Message == "" {
		http.Error(w, `{"errors":[{"status":"400","title":"Bad Request"}]}`, http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{}`))
}

func TestSendToStrictEndpoints(t *testing.T) {
	es, ls := httptest.NewServer(eventsEndpoint{}), httptest.NewServer(logsEndpoint{})
	defer es.Close()
	defer ls.Close()
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		if err := newEvents(t, es.URL, "ddkey").Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("events %s: %v", name, err)
		}
		if err := newLogs(t, ls.URL, "ddkey").Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("logs %s: %v", name, err)
		}
	}
	for _, err := range []error{
		newEvents(t, es.URL, "WRONGKEY").Send(context.Background(), evs["readme_try_event"]),
		newLogs(t, ls.URL, "WRONGKEY").Send(context.Background(), evs["readme_try_event"]),
	} {
		if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "WRONGKEY") {
			t.Errorf("want a permanent error without the key, got %v", err)
		}
	}
}

func TestDownThenUpLosesNothing(t *testing.T) {
	t.Run("events", func(t *testing.T) {
		deliverytest.DownThenUp(t, func(base string) delivery.Output { return newEvents(t, base, "ddkey") }, eventsEndpoint{})
	})
	t.Run("logs", func(t *testing.T) {
		deliverytest.DownThenUp(t, func(base string) delivery.Output { return newLogs(t, base, "ddkey") }, logsEndpoint{})
	})
}

// TestMinimumPriority: datadog.minimumpriority and datadoglogs.minimumpriority keep lower
// events out.
func TestMinimumPriority(t *testing.T) {
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newEvents(t, base, "ddkey") }, eventsEndpoint{})
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newLogs(t, base, "ddkey") }, logsEndpoint{})
}

func TestValidate(t *testing.T) {
	if err := (&Config{APIKey: "SECRETKEY", Host: "api.datadoghq.eu"}).Validate(); err == nil || !strings.Contains(err.Error(), "datadog.host") || strings.Contains(err.Error(), "SECRETKEY") {
		t.Errorf("Validate() = %v", err)
	}
	if err := (&LogsConfig{APIKey: "SECRETKEY", Host: "intake"}).Validate(); err == nil || !strings.Contains(err.Error(), "datadoglogs.host") {
		t.Errorf("Validate() = %v", err)
	}
}
