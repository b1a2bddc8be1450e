package aws

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

func testEnv() outputs.Env { return outputs.Env{Log: slog.New(slog.DiscardHandler)} }

func newTestSQS(t *testing.T, endpoint, queueURL string) *SQS {
	t.Helper()
	c := emulatorConfig(endpoint)
	c.SQS.URL = queueURL
	q, err := NewSQS(c, testEnv())
	if err != nil {
		t.Fatalf("NewSQS: %v", err)
	}
	return q
}

// TestSQSFauxqs sends 12 events through SendBatch (two SendMessageBatch calls: 10 + 2) and
// one through Send to fauxqs, and reads all 13 back with the SDK: body byte for byte, and the
// rule/priority/source attributes.
func TestSQSFauxqs(t *testing.T) {
	f := startFauxqs(t, 0, "")
	queue := f.createQueue(t, "falco")
	q := newTestSQS(t, f.URL, queue)
	want := map[string]*event.Event{}
	var batch []*event.Event
	for i := range 12 {
		ev := testEvent(fmt.Sprintf("rule-%02d", i), event.Warning)
		batch = append(batch, ev)
		want[ev.Rule] = ev
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.SendBatch(ctx, batch); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	single := testEvent("single <&> rule", event.Critical)
	want[single.Rule] = single
	if err := q.Send(ctx, single); err != nil {
		t.Fatalf("Send: %v", err)
	}
	var c collector
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(c.poll(t, f.SQS, queue)) >= len(want) },
		"fauxqs holds %d of %d messages", len(c.msgs), len(want))
	for _, m := range c.msgs {
		rule := sdkaws.ToString(m.MessageAttributes["rule"].StringValue)
		ev, ok := want[rule]
		if !ok {
			t.Fatalf("unexpected or duplicate message with rule attribute %q: %s", rule, sdkaws.ToString(m.Body))
		}
		delete(want, rule)
		if got := sdkaws.ToString(m.Body); got != string(ev.JSON()) {
			t.Errorf("body = %s, want %s", got, ev.JSON())
		}
		if got := sdkaws.ToString(m.MessageAttributes["priority"].StringValue); got != ev.Priority.String() {
			t.Errorf("priority attribute = %q, want %q", got, ev.Priority)
		}
		if got := sdkaws.ToString(m.MessageAttributes["source"].StringValue); got != "syscall" {
			t.Errorf("source attribute = %q", got)
		}
	}
	if len(want) != 0 {
		t.Errorf("not received: %v", want)
	}
}

// TestSQSMissingQueueIsPermanent: a queue that does not exist is a configuration error the
// engine must not retry for ten minutes.
func TestSQSMissingQueueIsPermanent(t *testing.T) {
	f := startFauxqs(t, 0, "")
	q := newTestSQS(t, f.URL, fauxqsQueueURL(0, "nope"))
	err := q.SendBatch(context.Background(), []*event.Event{testEvent("r", event.Error)})
	if err == nil || !delivery.IsPermanent(err) {
		t.Fatalf("SendBatch to a missing queue = %v, want a permanent error", err)
	}
}

// TestSQSPeerDownThenUp: events published while fauxqs is down are all delivered once it is
// up, by the engine's retries (the SDK's own retryer is off).
func TestSQSPeerDownThenUp(t *testing.T) {
	port := testpeers.FreePort(t)
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	queue := fauxqsQueueURL(port, "late")
	q := newTestSQS(t, endpoint, queue)
	p := delivery.DefaultPolicy()
	p.Retry.Initial, p.Retry.Max = 20*time.Millisecond, 200*time.Millisecond
	p.Batch = delivery.BatchPolicy{MaxEvents: sqsMaxBatch, MaxBytes: sqsMaxBatchBytes, FlushInterval: 50 * time.Millisecond}
	eng := deliverytest.Start(t, q, p)
	const n = 25
	for i := range n {
		if _, err := eng.Publish(context.Background(), testEvent(fmt.Sprintf("late-%02d", i), event.Error), []string{nameSQS}); err != nil {
			t.Fatal(err)
		}
	}
	f := startFauxqs(t, port, `{"queues":[{"name":"late"}]}`)
	got, err := f.SQS.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: sdkaws.String("late")})
	if err != nil || sdkaws.ToString(got.QueueUrl) != queue {
		t.Fatalf("fauxqs queue URL = %v (%v), want %s", sdkaws.ToString(got.QueueUrl), err, queue)
	}
	var c collector
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(c.poll(t, f.SQS, queue)) >= n },
		"fauxqs holds %d of %d messages", len(c.msgs), n)
	if lost := eng.Stop(2 * time.Second); lost != 0 {
		t.Errorf("%d events lost at stop", lost)
	}
	seen := map[string]bool{}
	for _, m := range c.msgs {
		seen[sdkaws.ToString(m.MessageAttributes["rule"].StringValue)] = true
	}
	for i := range n {
		if r := fmt.Sprintf("late-%02d", i); !seen[r] {
			t.Errorf("%s never arrived", r)
		}
	}
}

// TestSQSMinimumPriority routes through the engine with aws.sqs.minimumpriority=error: a
// warning is not sent, a critical is.
func TestSQSMinimumPriority(t *testing.T) {
	f := startFauxqs(t, 0, "")
	queue := f.createQueue(t, "prio")
	q := newTestSQS(t, f.URL, queue)
	p := delivery.DefaultPolicy()
	p.MinimumPriority = "error"
	p.Batch = delivery.BatchPolicy{MaxEvents: sqsMaxBatch, MaxBytes: sqsMaxBatchBytes, FlushInterval: 20 * time.Millisecond}
	eng := deliverytest.Start(t, q, p)
	for _, ev := range []*event.Event{testEvent("low", event.Warning), testEvent("high", event.Critical)} {
		deliverytest.Publish(t, eng, ev)
	}
	var c collector
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(c.poll(t, f.SQS, queue)) >= 1 }, "critical event not received")
	eng.Stop(2 * time.Second) // drained: the warning, had it been routed, would be in the queue now
	msgs := c.poll(t, f.SQS, queue)
	if len(msgs) != 1 || sdkaws.ToString(msgs[0].MessageAttributes["rule"].StringValue) != "high" {
		t.Fatalf("received %d messages, want only the critical one", len(msgs))
	}
}

func TestSQSChunks(t *testing.T) {
	var evs []*event.Event
	for i := range 25 {
		evs = append(evs, testEvent(fmt.Sprint(i), event.Warning))
	}
	if got := sqsChunks(evs); len(got) != 3 || len(got[0]) != 10 || len(got[1]) != 10 || len(got[2]) != 5 {
		t.Errorf("25 small events chunked as %v, want 10+10+5", got)
	}
	big := func(kib int) *event.Event {
		ev := testEvent("big", event.Warning)
		ev.Output = strings.Repeat("x", kib<<10)
		return ev
	}
	// 100 KiB each: two fit in 256 KiB, the third starts a new call; 300 KiB goes alone.
	got := sqsChunks([]*event.Event{big(100), big(100), big(100), big(300), testEvent("s", event.Warning)})
	want := [][]int{{0, 1}, {2}, {3}, {4}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("chunks = %v, want %v", got, want)
	}
}

// fakeSQS answers SendMessageBatch as SQS does, failing the entries whose Id is in fail
// (sender fault when the code starts with "Invalid").
func fakeSQS(t *testing.T, status int, errBody string, fail map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if status != http.StatusOK {
			w.WriteHeader(status)
			io.WriteString(w, errBody)
			return
		}
		var in struct {
			Entries []struct{ Id, MessageBody string }
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			t.Errorf("fake SQS: %v", err)
		}
		type okEntry struct{ Id, MessageId, MD5OfMessageBody string }
		type badEntry struct {
			Id, Code, Message string
			SenderFault       bool
		}
		out := struct {
			Successful []okEntry
			Failed     []badEntry
		}{Successful: []okEntry{}, Failed: []badEntry{}}
		for _, e := range in.Entries {
			if code, bad := fail[e.Id]; bad {
				out.Failed = append(out.Failed, badEntry{e.Id, code, "refused by the fake", strings.HasPrefix(code, "Invalid")})
				continue
			}
			sum := md5.Sum([]byte(e.MessageBody))
			out.Successful = append(out.Successful, okEntry{e.Id, "m-" + e.Id, hex.EncodeToString(sum[:])})
		}
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestSQSPartialFailure: SQS accepted some entries of a batch; the engine gets a BatchError
// naming the others, permanent for a sender fault, transient otherwise.
func TestSQSPartialFailure(t *testing.T) {
	srv := fakeSQS(t, http.StatusOK, "", map[string]string{"1": "InvalidParameterValue", "2": "InternalError"})
	q := newTestSQS(t, srv.URL, srv.URL+"/000000000000/q")
	evs := []*event.Event{testEvent("a", event.Error), testEvent("b", event.Error), testEvent("c", event.Error), testEvent("d", event.Error)}
	err := q.SendBatch(context.Background(), evs)
	var be *delivery.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("SendBatch = %v, want a *delivery.BatchError", err)
	}
	if len(be.Failed) != 2 || be.Failed[1] == nil || be.Failed[2] == nil {
		t.Fatalf("failed = %v, want items 1 and 2", be.Failed)
	}
	if !delivery.IsPermanent(be.Failed[1]) {
		t.Errorf("sender fault not permanent: %v", be.Failed[1])
	}
	if delivery.IsPermanent(be.Failed[2]) {
		t.Errorf("server fault permanent: %v", be.Failed[2])
	}
	if !strings.Contains(be.Failed[1].Error(), "InvalidParameterValue") {
		t.Errorf("error does not say why: %v", be.Failed[1])
	}
}

// TestSQSErrorClassification: throttling and 5xx are retried, validation errors are not.
func TestSQSErrorClassification(t *testing.T) {
	for _, tc := range []struct {
		status    int
		body      string
		permanent bool
	}{
		{400, `{"__type":"com.amazonaws.sqs#InvalidParameterValue","message":"bad"}`, true},
		{400, `{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"no queue"}`, true},
		{403, `{"__type":"com.amazon.coral.service#AccessDeniedException","message":"denied"}`, true},
		{400, `{"__type":"com.amazonaws.sqs#RequestThrottled","message":"slow down"}`, false},
		{400, `{"__type":"ThrottlingException","message":"slow down"}`, false},
		{400, `{"__type":"ExpiredToken","message":"refresh"}`, false},
		{429, `{}`, false},
		{500, `{"__type":"InternalError","message":"oops"}`, false},
		{503, `{"__type":"ServiceUnavailable","message":"later"}`, false},
	} {
		srv := fakeSQS(t, tc.status, tc.body, nil)
		q := newTestSQS(t, srv.URL, srv.URL+"/000000000000/q")
		err := q.SendBatch(context.Background(), []*event.Event{testEvent("x", event.Error)})
		if err == nil {
			t.Fatalf("%d %s: no error", tc.status, tc.body)
		}
		if delivery.IsPermanent(err) != tc.permanent {
			t.Errorf("%d %s: permanent = %v, want %v (%v)", tc.status, tc.body, delivery.IsPermanent(err), tc.permanent, err)
		}
	}
	// Nothing listening: a network error, transient.
	q := newTestSQS(t, fmt.Sprintf("http://127.0.0.1:%d", testpeers.FreePort(t)), "http://127.0.0.1:1/000000000000/q")
	if err := q.Send(context.Background(), testEvent("x", event.Error)); err == nil || delivery.IsPermanent(err) {
		t.Errorf("connection refused = %v, want a transient error", err)
	}
}
