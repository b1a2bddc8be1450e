package jetstream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A rebuilt output keeps its durable consumer (resized) and what it stores; it is drained
// once nothing is stored or unacknowledged.
func TestSpoolUpdateAndCloseOutput(t *testing.T) {
	b := openSpool(t, t.TempDir(), 0)
	defer b.Shutdown()
	addWebhookWith(t, b, 1)
	for i := 2; i <= 3; i++ {
		if _, err := b.Publish(context.Background(), testEvent(i), []string{"webhook"}); err != nil {
			t.Fatal(err)
		}
	}
	held, n := receiveSeq(t, b, "webhook")
	if n != 1 {
		t.Fatalf("first delivery seq %d", n)
	}
	p := policy()
	p.QueueSize = 7
	if err := b.UpdateOutput("webhook", p); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := b.queues["webhook"].cons.Info(ctx)
	if err != nil || info.Config.MaxAckPending != 7 {
		t.Fatalf("consumer after the update: %v %+v", err, info)
	}
	for want := 2; want <= 3; want++ {
		if b.Drained("webhook") {
			t.Fatal("drained with events stored")
		}
		d, n := receiveSeq(t, b, "webhook")
		if n != want {
			t.Errorf("seq %d, want %d", n, want)
		}
		d.Done()
	}
	if b.Drained("webhook") {
		t.Error("drained while an event is unacknowledged")
	}
	held.Done()
	for until := time.Now().Add(5 * time.Second); !b.Drained("webhook"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(until) { // acknowledgements are asynchronous
			t.Fatal("not drained once every event was acknowledged")
		}
	}
	b.RemoveOutput("webhook")
	if _, err := b.Receive(ctx, "webhook"); err == nil {
		t.Error("receive on a removed output")
	}
	if _, err := b.stream.Consumer(ctx, token("webhook")); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the embedded spool kept the removed output's consumer: %v", err)
	}
	if !b.Drained("webhook") {
		t.Error("a removed output is not drained")
	}
}
