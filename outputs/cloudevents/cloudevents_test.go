package cloudevents

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

// newOutput has the settings of falcosidekick's recordings (CLOUDEVENTS_EXTENSIONS=myext:myval).
func newOutput(t *testing.T, base string) delivery.Sender {
	t.Helper()
	c := defaults()
	c.Address, c.Extensions = base+"/cloudevents", map[string]string{"myext": "myval"}
	o, err := New(c, outputs.Env{})
	return posttest.Must(t, o, err)
}

// endpoint is a CloudEvents receiver in HTTP binary mode as strict as the HTTP protocol
// binding 1.0: specversion 1.0 and non-empty id, source and type; time in RFC 3339; every
// ce- header value percent-decodable to UTF-8 with nothing unencoded that must be encoded;
// a JSON event as data. It answers 202, as Knative brokers do.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/cloudevents" {
		http.NotFound(w, r)
		return
	}
	attrs := map[string]string{}
	for name, values := range r.Header {
		if !strings.HasPrefix(strings.ToLower(name), "ce-") {
			continue
		}
		v := values[0]
		if len(values) != 1 || strings.ContainsFunc(v, func(c rune) bool { return c <= ' ' || c >= 0x7f || c == '"' }) {
			http.Error(w, "unencoded characters in "+name, http.StatusBadRequest)
			return
		}
		d, err := url.PathUnescape(v)
		if err != nil || !utf8.ValidString(d) {
			http.Error(w, "bad percent-encoding in "+name, http.StatusBadRequest)
			return
		}
		attrs[strings.ToLower(name[3:])] = d
	}
	if attrs["specversion"] != "1.0" || attrs["id"] == "" || attrs["source"] == "" || attrs["type"] == "" {
		http.Error(w, "not a CloudEvent: specversion 1.0, id, source and type are required", http.StatusBadRequest)
		return
	}
	if _, err := time.Parse(time.RFC3339Nano, attrs["time"]); err != nil {
		http.Error(w, "time: "+err.Error(), http.StatusBadRequest)
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "datacontenttype", http.StatusUnsupportedMediaType)
		return
	}
	if _, err := posttest.DecodeEvent(r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// latin1 undoes the recorder's reading of UTF-8 header bytes as Latin-1 ("hÃ´st" for "hôst").
func latin1(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		b = append(b, byte(r))
	}
	return string(b)
}

// TestPayloadGolden: the Falco JSON and the ce- attributes falcosidekick sent, the same
// values once decoded (falcosidekick sent quotes and UTF-8 unencoded, a listed defect), the
// id being the event's UUID.
func TestPayloadGolden(t *testing.T) {
	posttest.Check(t, posttest.Golden{Variant: "cloudevents", Output: newOutput, Endpoint: endpoint{},
		Headers: []string{"Content-Type", "Ce-Specversion", "Ce-Id", "Ce-Source", "Ce-Type", "Ce-Time", "Ce-Priority",
			"Ce-Eventsource", "Ce-Myext"},
		Kept: []string{"Ce-Rule", "Ce-Hostname"},
		More: func(t *testing.T, c posttest.Case) {
			for _, h := range []string{"Ce-Rule", "Ce-Hostname"} {
				got, err := url.PathUnescape(c.Ours.Header.Get(h))
				if want := latin1(c.Falcosidekick.Headers[h]); err != nil || got != want {
					t.Errorf("%s = %q decoded (%v), falcosidekick: %q", h, got, err, want)
				}
			}
			if id := c.Ours.Header.Get("Ce-Id"); id != "uuid-"+c.Event {
				t.Errorf("Ce-Id = %q, want the event's UUID", id)
			}
		}})
}

// TestSendToStrictEndpoint: quotes, spaces, '%' and UTF-8 in attributes are encoded as the
// binding requires.
func TestSendToStrictEndpoint(t *testing.T) {
	srv := posttest.Server(t, endpoint{})
	ev := goldens.Events(t, nil)["debug_special_chars"].Clone()
	ev.UUID, ev.Rule = "u-1", `100% "sure" — rule`
	if err := newOutput(t, srv.URL).Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if got := Headers(ev)["Ce-Rule"]; got != "100%25%20%22sure%22%20%E2%80%94%20rule" {
		t.Errorf("Ce-Rule = %q", got)
	}
}

// TestDelivery: nothing is lost while the service is down, and cloudevents.minimumpriority keeps lower
// events out.
func TestDelivery(t *testing.T) { posttest.Delivery(t, newOutput, endpoint{}) }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Address: "broker:8080/ns/default"}, "cloudevents.address"},
		{Config{Address: "http://broker", Extensions: map[string]string{"my-ext": "v"}}, `cloudevents.extensions: "my-ext" is not a CloudEvents attribute name`},
		{Config{Address: "http://broker", Extensions: map[string]string{"Rule": "v"}}, `cloudevents.extensions: "Rule" is an attribute saker sets itself`},
	} {
		posttest.Refused(t, tc.c.Validate(), tc.want)
	}
	if err := (&Config{Address: "http://broker", Extensions: map[string]string{"MyExt2": "v"}}).Validate(); err != nil {
		t.Errorf("upper case names are lowered: %v", err)
	}
}
