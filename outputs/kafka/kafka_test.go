package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/kafkaprod"
)

const topic = "falco"

func testEnv() outputs.Env {
	p := delivery.DefaultPolicy()
	p.Timeout = 5 * time.Second
	return outputs.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Policy: p}
}

func cluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(2, topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newOutput(t *testing.T, c *Config) *kafkaprod.Producer {
	t.Helper()
	p, err := New(c, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// consume reads n records of topic from the start with a franz-go consumer.
func consume(t *testing.T, addrs []string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %d of %d records", len(got), n)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("consume: %v", errs[0].Err)
		}
		got = append(got, fs.Records()...)
	}
	return got
}

// TestProduceReadBack produces the recorded events as one batch to kfake and reads them back:
// each record's value is the event's Falco JSON, as falcosidekick's webhook (the same
// json.Marshal of the payload as its kafka output) sent it.
func TestProduceReadBack(t *testing.T) {
	c := cluster(t)
	out := newOutput(t, &Config{HostPort: strings.Join(c.ListenAddrs(), ","), Topic: topic, RequiredAcks: "ALL",
		Compression: "GZIP", Balancer: "least_bytes"})
	evs := goldens.Events(t, func(string) string { return "11111111-2222-4333-8444-555555555555" })
	names := goldens.Names(evs)
	batch := make([]*event.Event, len(names))
	for i, name := range names {
		batch[i] = evs[name]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := out.SendBatch(ctx, batch); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	stored := map[string]bool{}
	for _, r := range consume(t, c.ListenAddrs(), len(batch)) {
		if r.Key != nil {
			t.Errorf("record key %q, want none (falcosidekick sends none)", r.Key)
		}
		stored[string(r.Value)] = true
	}
	for _, name := range names {
		v := evs[name].JSON()
		if !stored[string(v)] {
			t.Errorf("%s: the event JSON was not read back", name)
			continue
		}
		goldens.SameEventJSON(t, "webhook", name, v)
	}
}

// TestSASL authenticates with each of falcosidekick's mechanisms against kfake's SASL; a
// wrong password fails the send without showing it.
func TestSASL(t *testing.T) {
	for _, mech := range []struct{ key, kfake string }{
		{"PLAIN", "PLAIN"}, {"SCRAM_SHA256", "SCRAM-SHA-256"}, {"SCRAM_SHA512", "SCRAM-SHA-512"},
	} {
		t.Run(mech.key, func(t *testing.T) {
			c := cluster(t, kfake.EnableSASL(), kfake.Superuser(mech.kfake, "falco", "s3cret-pass"))
			hp := strings.Join(c.ListenAddrs(), ",")
			out := newOutput(t, &Config{HostPort: hp, Topic: topic, SASL: mech.key, Username: "falco", Password: "s3cret-pass"})
			ev := deliverytest.Event(1)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := out.Send(ctx, ev); err != nil {
				t.Fatalf("send: %v", err)
			}
			m, _ := kafkaprod.Mechanism("kafka", mech.key, "falco", "s3cret-pass")
			if got := consume(t, c.ListenAddrs(), 1, kgo.SASL(m)); string(got[0].Value) != string(ev.JSON()) {
				t.Errorf("read back %s", got[0].Value)
			}

			bad := newOutput(t, &Config{HostPort: hp, Topic: topic, SASL: mech.key, Username: "falco", Password: "wrong-pass-xyz"})
			deliverytest.FailsWithin(t, func(ctx context.Context) error { return bad.Send(ctx, ev) }, "wrong-pass-xyz")
		})
	}
}

// TestDownThenUp queues events while no broker listens, then starts kfake on that port: the
// engine's retries deliver every event exactly once.
func TestDownThenUp(t *testing.T) {
	port := testpeers.FreePort(t)
	out := newOutput(t, &Config{HostPort: fmt.Sprintf("127.0.0.1:%d", port), Topic: topic, RequiredAcks: "ALL"})
	p := deliverytest.Policy("")
	p.Batch = delivery.BatchPolicy{MaxEvents: 5, MaxBytes: 1 << 20, FlushInterval: 20 * time.Millisecond}
	const n = 20
	eng := deliverytest.QueueWhileDown(t, out, p, n)
	c := cluster(t, kfake.Ports(port))
	recs := consume(t, c.ListenAddrs(), n)
	deliverytest.StopLosingNothing(t, eng)
	payloads := make([]string, len(recs))
	for i, r := range recs {
		payloads[i] = string(r.Value)
	}
	deliverytest.Received(t, payloads, n, true)
}

// TestDeadline: a broker that accepts connections and never answers makes Send fail when the
// attempt's context ends, not later.
func TestDeadline(t *testing.T) {
	env := testEnv()
	env.Policy.Timeout = time.Hour // only the context may end the attempt
	out, err := New(&Config{HostPort: testpeers.Silent(t), Topic: topic, RequiredAcks: "ALL"}, env)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	deliverytest.FailsWithin(t, func(ctx context.Context) error { return out.Send(ctx, deliverytest.Event(1)) }, "")
}

// TestTooLarge: a record over the broker's limit is a permanent failure of that item only.
func TestTooLarge(t *testing.T) {
	c := cluster(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2000"}))
	out := newOutput(t, &Config{HostPort: strings.Join(c.ListenAddrs(), ","), Topic: topic, RequiredAcks: "ONE", Balancer: "murmur2"})
	big := deliverytest.Event(2)
	big.Output = strings.Repeat("x", 4000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := out.SendBatch(ctx, []*event.Event{deliverytest.Event(1), big})
	var be *delivery.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[1] == nil || !delivery.IsPermanent(be.Failed[1]) {
		t.Fatalf("SendBatch: %v, want item 1 failed permanently", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{HostPort: "k1,k2:9093", Topic: "t"}, ""},
		{Config{HostPort: "k1", Topic: "t", SASL: "scram_sha512", Username: "u", Password: "p", RequiredAcks: "one", Compression: "zstd", Balancer: "CRC32"}, ""},
		{Config{HostPort: "k1"}, "kafka.topic"},
		{Config{HostPort: "kafka://k1:9092", Topic: "t"}, "kafka.hostport"},
		{Config{HostPort: "k1", Topic: "t", SASL: "GSSAPI"}, "kafka.sasl"},
		{Config{HostPort: "k1", Topic: "t", SASL: "PLAIN", Password: "secret"}, "kafka.username"},
		{Config{HostPort: "k1", Topic: "t", RequiredAcks: "some"}, "kafka.requiredacks"},
		{Config{HostPort: "k1", Topic: "t", Compression: "brotli"}, "kafka.compression"},
		{Config{HostPort: "k1", Topic: "t", Balancer: "hash"}, "kafka.balancer"},
	} {
		deliverytest.Invalid(t, tc.cfg, tc.cfg.Validate(), tc.want, "secret")
	}
	if got := kafkaprod.Brokers(" a , b:1,[::1]"); strings.Join(got, ",") != "a:9092,b:1,[::1]:9092" {
		t.Errorf("Brokers: %v", got)
	}
}
