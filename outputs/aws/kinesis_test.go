package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/testpeers"
)

func newTestKinesis(t *testing.T, endpoint, stream string) *Kinesis {
	t.Helper()
	c := emulatorConfig(endpoint)
	c.Kinesis.StreamName = stream
	k, err := NewKinesis(c, testEnv())
	if err != nil {
		t.Fatalf("NewKinesis: %v", err)
	}
	return k
}

// ruleOf is the rule of a record's Falco JSON.
func ruleOf(t *testing.T, data []byte) string {
	t.Helper()
	var got struct{ Rule string }
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("record is not JSON: %v: %s", err, data)
	}
	return got.Rule
}

// TestKinesisKinesalite puts 12 events with SendBatch and one with Send into a two-shard
// stream and reads them all back with GetRecords: data byte for byte, partition key the
// event's UUID.
func TestKinesisKinesalite(t *testing.T) {
	k := startKinesalite(t, 0, "")
	k.createStream(t, "falco", 2)
	out := newTestKinesis(t, k.URL, "falco")
	want := map[string]*event.Event{}
	var batch []*event.Event
	for i := range 12 {
		ev := testEvent(fmt.Sprintf("kinesis-%02d", i), event.Warning)
		ev.UUID = fmt.Sprintf("uuid-%02d", i)
		batch = append(batch, ev)
		want[ev.Rule] = ev
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := out.SendBatch(ctx, batch); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	single := testEvent("kinesis single", event.Critical)
	want[single.Rule] = single
	if err := out.Send(ctx, single); err != nil {
		t.Fatalf("Send: %v", err)
	}
	recs := k.records(t, "falco")
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for _, r := range recs {
		ev, ok := want[ruleOf(t, r.Data)]
		if !ok {
			t.Fatalf("unexpected or duplicate record %s", r.Data)
		}
		delete(want, ev.Rule)
		if string(r.Data) != string(ev.JSON()) {
			t.Errorf("record = %s, want %s", r.Data, ev.JSON())
		}
		if sdkaws.ToString(r.PartitionKey) != ev.UUID {
			t.Errorf("partition key = %q, want the event's uuid %q", sdkaws.ToString(r.PartitionKey), ev.UUID)
		}
	}
}

// TestKinesisMissingStreamIsPermanent: a stream that does not exist is a configuration error.
func TestKinesisMissingStreamIsPermanent(t *testing.T) {
	k := startKinesalite(t, 0, "")
	err := newTestKinesis(t, k.URL, "nope").SendBatch(context.Background(), []*event.Event{testEvent("r", event.Error)})
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("SendBatch to a missing stream = %v, want a permanent error naming it", err)
	}
}

// TestKinesisPeerDownThenUp: records put while kinesalite is down all land once it is back
// (same port, same storage), by the engine's retries, each once.
func TestKinesisPeerDownThenUp(t *testing.T) {
	dir := t.TempDir()
	k := startKinesalite(t, 0, dir)
	k.createStream(t, "late", 1)
	k.Stop()
	out := newTestKinesis(t, k.URL, "late")
	p := deliverytest.Policy("")
	p.Batch = delivery.BatchPolicy{MaxEvents: 5, MaxBytes: 1 << 20, FlushInterval: 20 * time.Millisecond}
	eng := deliverytest.Start(t, out, p)
	const n = 12
	for i := range n {
		deliverytest.Publish(t, eng, testEvent(fmt.Sprintf("kinesis-late-%02d", i), event.Error))
	}
	deliverytest.WaitFailing(t, eng)
	k = startKinesalite(t, k.Port, dir)
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(k.records(t, "late")) >= n },
		"kinesalite holds %d of %d records", len(k.records(t, "late")), n)
	if lost := eng.Stop(2 * time.Second); lost != 0 {
		t.Errorf("%d events lost", lost)
	}
	seen := map[string]int{}
	for _, r := range k.records(t, "late") {
		seen[ruleOf(t, r.Data)]++
	}
	wantEachOnce(t, seen, "kinesis-late-%02d", n)
}

// TestKinesisPartialFailure: PutRecords accepted some records; the others are reported one
// by one, throttled ones transient, a KMS access error permanent.
func TestKinesisPartialFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "Kinesis_20131202.PutRecords" {
			http.Error(w, "unexpected target", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprint(w, `{"FailedRecordCount":2,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"},`+
			`{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"slow down"},`+
			`{"ErrorCode":"KMSAccessDeniedException","ErrorMessage":"no key"}]}`)
	}))
	t.Cleanup(srv.Close)
	err := newTestKinesis(t, srv.URL, "s").SendBatch(context.Background(),
		[]*event.Event{testEvent("a", event.Error), testEvent("b", event.Error), testEvent("c", event.Error)})
	var be *delivery.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 2 || be.Failed[1] == nil || be.Failed[2] == nil {
		t.Fatalf("SendBatch = %v, want items 1 and 2 failed", err)
	}
	if delivery.IsPermanent(be.Failed[1]) || !delivery.IsPermanent(be.Failed[2]) {
		t.Errorf("throttled permanent = %v, KMS permanent = %v; want false, true", delivery.IsPermanent(be.Failed[1]), delivery.IsPermanent(be.Failed[2]))
	}
}

func TestKinesisChunks(t *testing.T) {
	var evs []*event.Event
	for i := range 1200 {
		evs = append(evs, testEvent(fmt.Sprint(i), event.Warning))
	}
	if got := kinesisChunks(evs); len(got) != 3 || len(got[0]) != 500 || len(got[2]) != 200 {
		t.Errorf("1200 small events chunked into %d calls, want 500+500+200", len(got))
	}
}
