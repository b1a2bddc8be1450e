package kafkarest

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

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

// newOutput has the settings of falcosidekick's recordings
// (KAFKAREST_ADDRESS=.../kafkarest/topics/falco).
func newOutput(t *testing.T, base string) delivery.Sender {
	t.Helper()
	c := defaults()
	c.Address = base + "/kafkarest/topics/falco"
	o, err := New(c, outputs.Env{})
	return posttest.Must(t, o, err)
}

// endpoint is the Confluent REST Proxy's POST /topics/falco (API v2) as strict as the proxy:
// its embedded-format content type (415 otherwise), a known topic (404, error_code 40401),
// records of base64 values (422, 42205), each value here a Falco event; it answers with the
// records' offsets. offsetError, when set, is the error code put in the offsets instead (a
// record the proxy could not write, answered with 200 all the same).
type endpoint struct {
	offsetError int
	offset      *atomic.Int64
}

func newEndpoint() endpoint { return endpoint{offset: new(atomic.Int64)} }

func (e endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/vnd.kafka.v2+json")
	fail := func(status, code int, msg string) {
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error_code":%d,"message":%q}`, code, msg)
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/kafkarest/topics/") {
		fail(http.StatusNotFound, 404, "HTTP 404 Not Found")
		return
	}
	if r.URL.Path != "/kafkarest/topics/falco" {
		fail(http.StatusNotFound, 40401, "Topic not found.")
		return
	}
	if r.Header.Get("Content-Type") != "application/vnd.kafka.binary.v2+json" {
		fail(http.StatusUnsupportedMediaType, 415, "HTTP 415 Unsupported Media Type")
		return
	}
	var req struct {
		Records []struct {
			Key       *string `json:"key"`
			Value     string  `json:"value"`
			Partition *int    `json:"partition"`
		} `json:"records"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || len(req.Records) == 0 {
		fail(http.StatusUnprocessableEntity, 422, "Unrecognized field or empty records")
		return
	}
	var offsets []string
	for _, rec := range req.Records {
		v, err := base64.StdEncoding.DecodeString(rec.Value)
		if err != nil {
			fail(http.StatusUnprocessableEntity, 42205, "Could not decode base64 value")
			return
		}
		if _, err := posttest.DecodeEvent(bytes.NewReader(v)); err != nil {
			fail(http.StatusBadRequest, 400, "not a Falco event: "+err.Error())
			return
		}
		if e.offsetError != 0 {
			offsets = append(offsets, fmt.Sprintf(`{"partition":null,"offset":null,"error_code":%d,"error":"This server is not the leader for that topic-partition."}`, e.offsetError))
			continue
		}
		offsets = append(offsets, fmt.Sprintf(`{"partition":0,"offset":%d,"error_code":null,"error":null}`, e.offset.Add(1)-1))
	}
	fmt.Fprintf(w, `{"offsets":[%s],"key_schema_id":null,"value_schema_id":null}`, strings.Join(offsets, ","))
}

// BodyText implements deliverytest.BodyTexter: the records' values, decoded.
func (endpoint) BodyText(body []byte) string {
	v, _ := decodeRecords(body)
	b, _ := json.Marshal(v)
	return string(b)
}

func decodeBody(t testing.TB, b []byte) any {
	t.Helper()
	v, err := decodeRecords(b)
	if err != nil {
		t.Fatalf("body: %v\n%s", err, b)
	}
	return v
}

// decodeRecords decodes a produce request with each record's value decoded too
// (falcosidekick's recordings normalized the uuid inside the base64 value).
func decodeRecords(b []byte) (any, error) {
	var req struct {
		Records []struct {
			Value string `json:"value"`
		} `json:"records"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, err
	}
	var out []any
	for _, r := range req.Records {
		v, err := base64.StdEncoding.DecodeString(r.Value)
		if err != nil {
			return nil, err
		}
		var ev any
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(&ev); err != nil {
			return nil, err
		}
		out = append(out, map[string]any{"value": ev})
	}
	return map[string]any{"records": out}, nil
}

// TestPayloadGolden: one record whose value is the Falco JSON, to the same topic URL and
// with the same content type as falcosidekick.
func TestPayloadGolden(t *testing.T) {
	posttest.Check(t, posttest.Golden{Variant: "kafkarest", Output: newOutput, Endpoint: newEndpoint(),
		Headers: []string{"Content-Type"}, Body: decodeBody})
}

// TestRecordErrors: a record the proxy answers 200 for but did not write is an error,
// retried when the proxy says it is retriable; an unknown topic is permanent.
func TestRecordErrors(t *testing.T) {
	ev := goldens.Events(t, nil)["many_fields"]
	for code, permanent := range map[int]bool{2: false, 1: true} {
		e := newEndpoint()
		e.offsetError = code
		srv := posttest.Server(t, e)
		err := newOutput(t, srv.URL).Send(context.Background(), ev)
		if err == nil || delivery.IsPermanent(err) != permanent || !strings.Contains(err.Error(), "not the leader") {
			t.Errorf("error code %d: %v, want permanent=%v", code, err, permanent)
		}
	}
	srv := posttest.Server(t, newEndpoint())
	c := defaults()
	c.Address = srv.URL + "/kafkarest/topics/nosuchtopic"
	o, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Send(context.Background(), ev); err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "Topic not found") {
		t.Errorf("unknown topic: %v", err)
	}
	c.Address, c.Version = srv.URL+"/kafkarest/topics/falco", 1
	if o, err = New(c, outputs.Env{}); err != nil {
		t.Fatal(err)
	}
	if err := o.Send(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "415") {
		t.Errorf("a v2 proxy takes no v1 content type: %v", err)
	}
}

// TestDelivery: nothing is lost while the service is down, and kafkarest.minimumpriority keeps lower
// events out.
func TestDelivery(t *testing.T) { posttest.Delivery(t, newOutput, newEndpoint()) }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Address: "kafka-rest:8082/topics/falco", Version: 2}, "kafkarest.address"},
		{Config{Address: "http://kafka-rest:8082/topics/falco", Version: 3}, "kafkarest.version must be 2 or 1, got 3"},
	} {
		posttest.Refused(t, tc.c.Validate(), tc.want)
	}
}
