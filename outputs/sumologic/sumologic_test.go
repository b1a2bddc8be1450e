package sumologic

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

const sourcePath = "/receiver/v1/http/SOURCETOKEN"

func newOutput(t *testing.T, url string) *falcopost.Output {
	t.Helper()
	s, err := New(testConfig(url), outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testConfig(url string) *Config {
	return &Config{ReceiverURL: url, SourceCategory: "cat", SourceHost: "shost", Name: "sname", CheckCert: true}
}

// TestPayloadGolden: each request carries the event's Falco JSON, as falcosidekick's did,
// and the same X-Sumo-* headers.
func TestPayloadGolden(t *testing.T) {
	evs := goldens.Events(t, func(string) string { return "<VARIES>" })
	headers := testConfig("https://collectors.example" + sourcePath).headers()
	for _, name := range goldens.Names(evs) {
		rec := goldens.Recorded(t, "sumologic", name)
		for h, v := range headers {
			if rec.Headers[h] != v {
				t.Errorf("%s: header %s = %q, falcosidekick sends %q", name, h, v, rec.Headers[h])
			}
		}
		fsk, ours := chattest.Falcosidekick(t, "sumologic", name), chattest.Decode(t, evs[name].JSON())
		goldens.NormalizeTime(fsk)
		goldens.NormalizeTime(ours)
		if a, b := mustJSON(fsk), mustJSON(ours); a != b {
			t.Errorf("%s: body\n%s\nfalcosidekick sends\n%s", name, b, a)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// endpoint is an HTTP Logs source as strict as Sumo Logic's: its token in the path, a
// non-empty body; it answers 200.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var v map[string]any
	switch {
	case r.Method != http.MethodPost || r.URL.Path != sourcePath:
		http.Error(w, "Unknown source", http.StatusUnauthorized)
	case json.NewDecoder(r.Body).Decode(&v) != nil || r.Header.Get("X-Sumo-Category") != "cat":
		http.Error(w, "Bad request", http.StatusBadRequest)
	}
}

func TestSendToStrictEndpoint(t *testing.T) {
	srv := httptest.NewServer(endpoint{})
	defer srv.Close()
	ev := goldens.Events(t, nil)["many_fields"]
	if err := newOutput(t, srv.URL+sourcePath).Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	err := newOutput(t, srv.URL+"/receiver/v1/http/DELETEDTOKEN").Send(context.Background(), ev)
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "DELETEDTOKEN") {
		t.Fatalf("want a permanent error without the token, got %v", err)
	}
}

func TestDownThenUpLosesNothing(t *testing.T) {
	deliverytest.DownThenUp(t, func(base string) delivery.Output { return newOutput(t, base+sourcePath) }, endpoint{})
}

// TestMinimumPriority: sumologic.minimumpriority keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newOutput(t, base+sourcePath) }, endpoint{})
}

func TestValidate(t *testing.T) {
	if err := (&Config{ReceiverURL: "collectors.example/receiver/v1/http/SECRETTOKEN"}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "sumologic.receiverurl") || strings.Contains(err.Error(), "SECRETTOKEN") {
		t.Errorf("Validate() = %v", err)
	}
}
