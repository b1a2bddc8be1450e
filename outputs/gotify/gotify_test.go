package gotify

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

// build has the settings of falcosidekick's recordings (GOTIFY_HOSTPORT=.../gotify,
// GOTIFY_TOKEN=gtok) and the given format.
func build(t *testing.T, base, token, format string) delivery.Sender {
	t.Helper()
	c := defaults()
	c.HostPort, c.Token = base+"/gotify", token
	if format != "" {
		c.Format = format
	}
	o, err := New(c, outputs.Env{})
	return posttest.Must(t, o, err)
}

func newOutput(t *testing.T, base string) delivery.Sender { return build(t, base, "gtok", "") }

// endpoint is Gotify's POST /message as strict as the server: an application token in
// X-Gotify-Key (401 otherwise), a body of its message fields only with a message (400
// otherwise), a priority within 0-10; it answers with the stored message.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path != "/gotify/message" || r.Method != http.MethodPost {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"Not Found","errorCode":404,"errorDescription":"page not found"}`))
		return
	}
	if r.Header.Get("X-Gotify-Key") != "gtok" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"Unauthorized","errorCode":401,"errorDescription":"you need to provide a valid access token or user credentials to access this api"}`))
		return
	}
	var m struct {
		Title    string         `json:"title"`
		Message  string         `json:"message"`
		Priority *int           `json:"priority"`
		Extras   map[string]any `json:"extras"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || m.Message == "" || m.Priority != nil && (*m.Priority < 0 || *m.Priority > 10) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"Bad Request","errorCode":400,"errorDescription":"Field 'message' is required"}`))
		return
	}
	_, _ = w.Write([]byte(`{"id":1,"appid":1,"message":"...","date":"2024-01-01T00:00:00Z"}`))
}

// message compares everything but the message text, which More compares line by line.
func message(t testing.TB, b []byte) any {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	delete(m, "message")
	return m
}

// TestPayloadGolden: the title, priority and display type falcosidekick sent, to the same
// path with the same token, for each format; the message has every line falcosidekick's
// had (Markdown, plain text) or is the same event (json).
func TestPayloadGolden(t *testing.T) {
	for variant, format := range map[string]string{"gotify": "", "gotify-plaintext": "plaintext", "gotify-json": "json"} {
		t.Run(variant, func(t *testing.T) {
			posttest.Check(t, posttest.Golden{Variant: variant, Dir: variant, Endpoint: endpoint{},
				Output:  func(t *testing.T, base string) delivery.Sender { return build(t, base, "gtok", format) },
				Headers: []string{"X-Gotify-Key", "Content-Type"}, Body: message,
				More: func(t *testing.T, c posttest.Case) {
					var ours, fsk struct{ Message string }
					if json.Unmarshal(c.Ours.Body, &ours) != nil || json.Unmarshal([]byte(c.Falcosidekick.Body), &fsk) != nil {
						t.Fatal("bodies are not JSON")
					}
					if format != "json" {
						chattest.SameLines(t, fsk.Message, ours.Message, nil)
						return
					}
					posttest.SameJSON(t, "message", posttest.DecodeJSON(t, []byte(fsk.Message)), posttest.DecodeJSON(t, []byte(ours.Message)))
				}})
		})
	}
}

// TestSendToStrictEndpoint: a token Gotify refuses is a permanent error without the token.
func TestSendToStrictEndpoint(t *testing.T) {
	srv := posttest.Server(t, endpoint{})
	err := build(t, srv.URL, "WRONGTOKEN", "").Send(context.Background(), goldens.Events(t, nil)["many_fields"])
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "WRONGTOKEN") {
		t.Fatalf("want a permanent 401 without the token, got %v", err)
	}
}

// TestDelivery: nothing is lost while the service is down, and gotify.minimumpriority keeps lower
// events out.
func TestDelivery(t *testing.T) { posttest.Delivery(t, newOutput, endpoint{}) }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{HostPort: "gotify:80", Format: "markdown"}, "gotify.hostport"},
		{Config{HostPort: "http://gotify", Format: "html"}, `gotify.format must be one of markdown, plaintext, text, json, got "html"`},
		{Config{HostPort: "http://gotify", Format: "json", Token: "SECRET\n"}, "gotify.token"},
	} {
		posttest.Refused(t, tc.c.Validate(), tc.want)
	}
}
