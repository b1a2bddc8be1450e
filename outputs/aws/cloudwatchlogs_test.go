package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
)

func newTestLogs(t *testing.T, endpoint, group, stream string) *CloudWatchLogs {
	t.Helper()
	c := emulatorConfig(endpoint)
	c.CloudWatchLogs.LogGroup, c.CloudWatchLogs.LogStream = group, stream
	w, err := NewCloudWatchLogs(c, testEnv())
	if err != nil {
		t.Fatalf("NewCloudWatchLogs: %v", err)
	}
	return w
}

func serveLogs(t *testing.T, f *fakeLogs) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if v := f.violations(); len(v) > 0 {
			t.Errorf("requests the service would refuse: %q", v)
		}
	})
	return srv
}

// TestCloudWatchLogsBatch: a batch out of time order reaches the stream sorted (the service
// requires it), each message the event's Falco JSON stamped with the event's time; the
// default stream is created first, as falcosidekick did, and only once.
func TestCloudWatchLogsBatch(t *testing.T) {
	f := newFakeLogs("falco")
	srv := serveLogs(t, f)
	w := newTestLogs(t, srv.URL, "falco", "")
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var evs []*event.Event
	for i, offset := range []int{5, 1, 3, 0, 4, 2} {
		ev := testEvent(fmt.Sprintf("cwl-%d", i), event.Warning)
		ev.Time = base.Add(time.Duration(offset) * time.Second)
		evs = append(evs, ev)
	}
	if err := w.SendBatch(context.Background(), evs); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	single := testEvent("cwl-single", event.Error)
	single.Time = time.Now()
	if err := w.Send(context.Background(), single); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := f.events("falco", cwlDefaultStream)
	if len(got) != 7 {
		t.Fatalf("stream holds %d events, want 7", len(got))
	}
	for i, want := range []int{3, 1, 5, 2, 4, 0} {
		if got[i].Message != string(evs[want].JSON()) || got[i].Timestamp != evs[want].Time.UnixMilli() {
			t.Errorf("event %d = %d %s, want %s at %d", i, got[i].Timestamp, got[i].Message, evs[want].Rule, evs[want].Time.UnixMilli())
		}
	}
	if n := f.calls["CreateLogStream"]; n != 1 {
		t.Errorf("CreateLogStream called %d times, want once", n)
	}
}

// TestCloudWatchLogsLimits: more than 1 MiB, and a span over 24 hours, are split into
// several calls the service accepts.
func TestCloudWatchLogsLimits(t *testing.T) {
	f := newFakeLogs("falco")
	srv := serveLogs(t, f)
	w := newTestLogs(t, srv.URL, "falco", "")
	var evs []*event.Event
	now := time.Now()
	for i := range 40 {
		ev := testEvent(fmt.Sprintf("big-%02d", i), event.Warning)
		ev.Output = strings.Repeat("x", 100<<10)
		ev.Time = now.Add(-13 * 24 * time.Hour).Add(time.Duration(i) * 8 * time.Hour)
		evs = append(evs, ev)
	}
	if err := w.SendBatch(context.Background(), evs); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if got := len(f.events("falco", cwlDefaultStream)); got != 40 {
		t.Errorf("stream holds %d events, want 40", got)
	}
	if n := f.calls["PutLogEvents"]; n < 5 {
		t.Errorf("%d PutLogEvents calls for 4 MiB over 13 days, want at least 5", n)
	}
}

// TestCloudWatchLogsMissingStreamCreated: a configured stream that does not exist is created
// when the first put finds it missing; a missing group is a permanent error naming the key.
func TestCloudWatchLogsMissingStreamCreated(t *testing.T) {
	f := newFakeLogs("falco")
	srv := serveLogs(t, f)
	w := newTestLogs(t, srv.URL, "falco", "my-stream")
	first := testEvent("first", event.Error)
	first.Time = time.Now()
	if err := w.Send(context.Background(), first); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := f.events("falco", "my-stream"); len(got) != 1 {
		t.Fatalf("stream holds %d events, want 1", len(got))
	}
	err := newTestLogs(t, srv.URL, "no-such-group", "s").Send(context.Background(), testEvent("x", event.Error))
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "aws.cloudwatchlogs.loggroup") {
		t.Errorf("missing group = %v, want a permanent error naming aws.cloudwatchlogs.loggroup", err)
	}
}

// TestCloudWatchLogsRejectedAndThrottled: events older than 14 days are permanent per-item
// failures, events 3 hours ahead transient ones, the others delivered; ThrottlingException
// is transient.
func TestCloudWatchLogsRejectedAndThrottled(t *testing.T) {
	f := newFakeLogs("falco")
	srv := serveLogs(t, f)
	w := newTestLogs(t, srv.URL, "falco", "")
	old, ok, future := testEvent("old", event.Error), testEvent("ok", event.Error), testEvent("future", event.Error)
	old.Time, ok.Time, future.Time = time.Now().Add(-15*24*time.Hour), time.Now(), time.Now().Add(3*time.Hour)
	err := w.SendBatch(context.Background(), []*event.Event{future, ok, old})
	var be *delivery.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 2 {
		t.Fatalf("SendBatch = %v, want 2 items failed", err)
	}
	if !delivery.IsPermanent(be.Failed[2]) || delivery.IsPermanent(be.Failed[0]) {
		t.Errorf("old permanent = %v, future permanent = %v; want true, false", delivery.IsPermanent(be.Failed[2]), delivery.IsPermanent(be.Failed[0]))
	}
	if got := f.events("falco", cwlDefaultStream); len(got) != 1 || !strings.Contains(got[0].Message, `"ok"`) {
		t.Errorf("stream = %v, want only the current event", got)
	}
	f.mu.Lock()
	f.throttle = 1
	f.mu.Unlock()
	if err := w.Send(context.Background(), ok); err == nil || delivery.IsPermanent(err) || !strings.Contains(err.Error(), "ThrottlingException") {
		t.Errorf("throttled = %v, want a transient ThrottlingException", err)
	}
	if err := w.Send(context.Background(), old); err == nil || !delivery.IsPermanent(err) {
		t.Errorf("Send(too old) = %v, want the event's permanent error", err)
	}
}

// TestCloudWatchLogsPeerDownThenUp: nothing is lost while the service cannot be reached.
func TestCloudWatchLogsPeerDownThenUp(t *testing.T) {
	f := newFakeLogs("falco")
	deliverytest.DownThenUp(t, func(base string) delivery.Output { return newTestLogs(t, base, "falco", "") }, f)
	if got := len(f.events("falco", cwlDefaultStream)); got != 10 {
		t.Errorf("stream holds %d events, want 10", got)
	}
	if v := f.violations(); len(v) > 0 {
		t.Errorf("requests the service would refuse: %q", v)
	}
}

// hangingServer accepts connections and never answers until the request is abandoned.
func hangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: only then does the server notice the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) })
	return srv
}

// TestSendRespectsDeadline: every new output gives up when the attempt's deadline passes,
// with a transient error, against a server that never answers (the SDK retries nothing).
func TestSendRespectsDeadline(t *testing.T) {
	srv := hangingServer(t)
	yc := yandexDefaults()
	yc.AccessKeyID, yc.SecretAccessKey, yc.S3.Bucket, yc.S3.Endpoint = "id", "secret", "bucket", srv.URL
	yc.DataStreams.StreamName, yc.DataStreams.Endpoint = "stream", srv.URL
	ys3, err := NewYandexS3(yc, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	yds, err := NewYandexDataStreams(yc, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	c := emulatorConfig(srv.URL)
	c.S3.Bucket = "bucket"
	for name, out := range map[string]delivery.Sender{
		"awss3": newTestS3(t, c), "awskinesis": newTestKinesis(t, srv.URL, "s"),
		"awscloudwatchlogs": newTestLogs(t, srv.URL, "g", "s"), "yandexs3": ys3, "yandexdatastreams": yds,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		err := out.Send(ctx, testEvent("slow", event.Error))
		cancel()
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s: Send took %v with a 200ms deadline", name, took)
		}
		if err == nil || delivery.IsPermanent(err) {
			t.Errorf("%s: Send = %v, want a transient error", name, err)
		}
	}
}
