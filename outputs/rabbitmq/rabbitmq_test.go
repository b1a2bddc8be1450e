package rabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

// The tests use the RabbitMQ running on 127.0.0.1:5672 (guest/guest), each with a queue of
// its own that it deletes; starting a broker per test would cost seconds of Erlang start-up.
const broker = "127.0.0.1:5672"

func brokerURL(addr string) string { return "amqp://guest:guest@" + addr + "/" }

// queue declares a uniquely named queue for the test and deletes it at the end; it returns
// its name and a channel to read it with.
func queue(t testing.TB) (string, *amqp.Channel) {
	t.Helper()
	testpeers.Need(t, "rabbitmq-server")
	if !testpeers.PortOpen(5672) {
		t.Fatalf("no RabbitMQ on %s (a test peer: install rabbitmq-server)", broker)
	}
	conn, err := amqp.Dial(brokerURL(broker))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "saker-test-" + hex.EncodeToString(b)
	if _, err := ch.QueueDeclare(name, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			t.Errorf("delete queue %s: %v", name, err)
		}
		_ = conn.Close()
	})
	return name, ch
}

// drain gets the queue's messages until it holds n or the time is up.
func drain(t *testing.T, ch *amqp.Channel, q string, n int) []amqp.Delivery {
	t.Helper()
	var got []amqp.Delivery
	testpeers.Eventually(t, 20*time.Second, func() bool {
		for {
			d, ok, err := ch.Get(q, true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			got = append(got, d)
		}
		return len(got) >= n
	}, "queue %s: %d of %d messages", q, len(got), n)
	return got
}

func newOutput(t testing.TB, url, q string) *RabbitMQ {
	t.Helper()
	r, err := New(&Config{URL: url, Queue: q}, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// TestPublishReadBack publishes the recorded events and consumes them: body the Falco JSON
// falcosidekick sends, content type text/plain, persistent, message id the uuid.
func TestPublishReadBack(t *testing.T) {
	q, ch := queue(t)
	out := newOutput(t, brokerURL(broker), q)
	evs := goldens.Events(t, func(string) string { return "11111111-2222-4333-8444-555555555555" })
	names := goldens.Names(evs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range names {
		if err := out.Send(ctx, evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	got := drain(t, ch, q, len(names))
	for i, name := range names {
		d := got[i]
		if string(d.Body) != string(evs[name].JSON()) || d.ContentType != "text/plain" || d.DeliveryMode != amqp.Persistent || d.MessageId != evs[name].UUID {
			t.Errorf("%s: got %s %d %q %s", name, d.ContentType, d.DeliveryMode, d.MessageId, d.Body)
		}
		goldens.SameEventJSON(t, "webhook", name, d.Body)
	}
}

// TestNoQueue: a message no queue takes is a (transient) failure, not a silent loss.
func TestNoQueue(t *testing.T) {
	q, _ := queue(t)
	out := newOutput(t, brokerURL(broker), q+"-missing")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := out.Send(ctx, deliverytest.Event(1))
	if err == nil || delivery.IsPermanent(err) || !strings.Contains(err.Error(), "unroutable") {
		t.Fatalf("publish to a missing queue: %v", err)
	}
	// The session survives: the next send to the real queue works.
	out.queue = q
	if err := out.Send(ctx, deliverytest.Event(2)); err != nil {
		t.Fatal(err)
	}
}

// TestReconnect: the broker side drops the connection (the proxy cuts it) between sends and
// in the middle of a stream of events; the output dials again, the engine retries, and every
// event arrives at least once.
func TestReconnect(t *testing.T) {
	q, ch := queue(t)
	p := testpeers.NewProxy(t, broker, false)
	out := newOutput(t, brokerURL(p.Addr), q)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := out.Send(ctx, deliverytest.Event(0)); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	// The first send after the drop may fail (the loss is seen when publishing); the next
	// one dials again.
	if err := out.Send(ctx, deliverytest.Event(0)); err != nil {
		if err := out.Send(ctx, deliverytest.Event(0)); err != nil {
			t.Fatalf("send after the drop: %v", err)
		}
	}
	if a := p.Accepted(); a != 2 {
		t.Fatalf("%d connections to the broker, want 2 (one redial)", a)
	}
	eng := deliverytest.Start(t, out, batching())
	const n = 30
	for i := 1; i <= n; i++ {
		deliverytest.Publish(t, eng, deliverytest.Event(i))
		if i == n/2 {
			p.Cut()
		}
	}
	got := drain(t, ch, q, n+1)
	deliverytest.StopLosingNothing(t, eng)
	deliverytest.Received(t, bodies(got), n+1, false)
}

// batching is the tests' delivery policy with batches of up to 4 events.
func batching() delivery.Policy {
	p := deliverytest.Policy("")
	p.Batch = delivery.BatchPolicy{MaxEvents: 4, MaxBytes: 1 << 20, FlushInterval: 10 * time.Millisecond}
	return p
}

// TestDownThenUp: events queued while the broker is unreachable all arrive, once each, after
// it is back.
func TestDownThenUp(t *testing.T) {
	q, ch := queue(t)
	p := testpeers.NewProxy(t, broker, true)
	out := newOutput(t, brokerURL(p.Addr), q)
	const n = 10
	eng := deliverytest.QueueWhileDown(t, out, batching(), n)
	p.Up(t)
	got := drain(t, ch, q, n)
	deliverytest.StopLosingNothing(t, eng)
	deliverytest.Received(t, bodies(got), n, true)
}

// bodies are the deliveries' bodies.
func bodies(ds []amqp.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	return out
}

// TestDeadline: a broker that never answers the handshake makes Send fail with the attempt.
func TestDeadline(t *testing.T) {
	out := newOutput(t, "amqp://guest:hunter2pass@"+testpeers.Silent(t)+"/", "q")
	deliverytest.FailsWithin(t, func(ctx context.Context) error { return out.Send(ctx, deliverytest.Event(1)) }, "hunter2pass")
}

// TestConfirmWithheld: a broker that takes the message but never confirms makes Send fail
// when the attempt's context ends.
func TestConfirmWithheld(t *testing.T) {
	q, _ := queue(t)
	p := testpeers.NewProxy(t, broker, false)
	out := newOutput(t, brokerURL(p.Addr), q)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := out.Send(ctx, deliverytest.Event(1)); err != nil {
		t.Fatal(err)
	}
	p.Hold()
	deliverytest.FailsWithin(t, func(ctx context.Context) error { return out.Send(ctx, deliverytest.Event(2)) }, "")
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Queue: "q"}, ""},
		{Config{URL: "amqp://u:p@h:5672/", Queue: "q"}, ""},
		{Config{URL: "amqps://h/vhost", Queue: "q"}, ""},
		{Config{URL: "amqp://u:p@h:5672/"}, "rabbitmq.queue"},
		{Config{URL: "http://u:secretpw@h/", Queue: "q"}, "rabbitmq.url"},
	} {
		deliverytest.Invalid(t, tc.cfg, tc.cfg.Validate(), tc.want, "secretpw")
	}
}
