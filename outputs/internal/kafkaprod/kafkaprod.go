// Package kafkaprod is the Kafka producer shared by the kafka output and the
// azure.eventhub output (Event Hubs speaks the Kafka protocol): one franz-go client per
// output, each event's Falco JSON as the value of one record, as falcosidekick produces it.
// The client never retries past the delivery engine's attempt: the record delivery timeout
// and the produce request timeout are the attempt's timeout, and the attempt's context
// cancels what was not sent yet, so the engine's retry with backoff stays the only one.
package kafkaprod

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
)

// DefaultPort is Kafka's port, added to a broker given without one (as falcosidekick did).
const DefaultPort = "9092"

// Batch is the default batching of the Kafka outputs: 100 events, 1 MiB (the brokers'
// default message.max.bytes), sent after 200ms at most.
var Batch = delivery.BatchPolicy{MaxEvents: 100, MaxBytes: 1 << 20, FlushInterval: 200 * time.Millisecond}

// Options configure one producer. Section names the keys in errors ("kafka",
// "azure.eventhub").
type Options struct {
	Name     string // the output's name (metrics destination)
	Section  string
	Brokers  []string
	Topic    string
	SASL     sasl.Mechanism // nil: no authentication
	TLS      *tls.Config    // nil: plain TCP
	Acks     string         // ALL, ONE or NONE
	Compress string         // NONE, GZIP, SNAPPY, LZ4, ZSTD
	Balancer string         // falcosidekick's balancer names, see Check
	ClientID string
	// TopicCreation lets the broker create a missing topic (kafka.topiccreation).
	TopicCreation bool
	// NoIdempotence turns off the idempotent producer, for brokers without it (Event Hubs).
	NoIdempotence bool
	// Timeout is the engine's attempt timeout: records not acknowledged in it fail.
	Timeout time.Duration
	Log     *slog.Logger
}

// Check validates falcosidekick's kafka tuning values, naming the key at fault.
func Check(section, acks, compression, balancer string) error {
	if _, err := acksOpts(acks); err != nil {
		return fmt.Errorf("%s.requiredacks: %w", section, err)
	}
	if _, err := codec(compression); err != nil {
		return fmt.Errorf("%s.compression: %w", section, err)
	}
	if _, err := partitioner(balancer); err != nil {
		return fmt.Errorf("%s.balancer: %w", section, err)
	}
	return nil
}

// Mechanism returns the SASL mechanism for falcosidekick's kafka.sasl value (PLAIN,
// SCRAM_SHA256, SCRAM_SHA512; empty for none).
func Mechanism(section, name, user, password string) (sasl.Mechanism, error) {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "":
		return nil, nil
	case "PLAIN":
		return plain.Auth{User: user, Pass: password}.AsMechanism(), nil
	case "SCRAM_SHA256", "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: password}.AsSha256Mechanism(), nil
	case "SCRAM_SHA512", "SCRAM-SHA-512":
		return scram.Auth{User: user, Pass: password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("%s.sasl must be PLAIN, SCRAM_SHA256 or SCRAM_SHA512 (or empty), got %q", section, name)
}

func acksOpts(acks string) ([]kgo.Opt, error) {
	switch strings.ToUpper(strings.TrimSpace(acks)) {
	case "ALL", "-1", "":
		return []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}, nil
	case "ONE", "1":
		return []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}, nil
	case "NONE", "0":
		return []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}, nil
	}
	return nil, fmt.Errorf("must be ALL, ONE or NONE, got %q", acks)
}

func codec(name string) (kgo.CompressionCodec, error) {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "", "NONE":
		return kgo.NoCompression(), nil
	case "GZIP":
		return kgo.GzipCompression(), nil
	case "SNAPPY":
		return kgo.SnappyCompression(), nil
	case "LZ4":
		return kgo.Lz4Compression(), nil
	case "ZSTD":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("must be NONE, GZIP, SNAPPY, LZ4 or ZSTD, got %q", name)
}

// partitioner maps falcosidekick's (kafka-go's) balancer names. The records carry no key,
// so the hash balancers place them like the sticky partitioner does.
func partitioner(name string) (kgo.Partitioner, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "round_robin":
		return kgo.RoundRobinPartitioner(), nil
	case "least_bytes":
		return kgo.LeastBackupPartitioner(), nil
	case "crc32", "crc32_random":
		return kgo.StickyKeyPartitioner(kgo.SaramaHasher(crc32.ChecksumIEEE)), nil
	case "murmur2", "murmur2_random":
		return kgo.StickyKeyPartitioner(nil), nil
	}
	return nil, fmt.Errorf("must be round_robin, least_bytes, crc32, crc32_random, murmur2 or murmur2_random, got %q", name)
}

// Brokers splits a comma-separated broker list, adding port 9092 where none is given.
func Brokers(list string) []string {
	var out []string
	for _, b := range strings.Split(list, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(b); err != nil {
			b = net.JoinHostPort(strings.Trim(b, "[]"), DefaultPort)
		}
		out = append(out, b)
	}
	return out
}

// Producer is a delivery.Sender and delivery.BatchSender producing to one topic.
type Producer struct {
	name  string
	topic string
	cl    *kgo.Client
}

// New builds the client. It does not connect: a broker down at start-up only makes the
// first sends fail (transiently).
func New(o Options) (*Producer, error) {
	if len(o.Brokers) == 0 {
		return nil, fmt.Errorf("%s: no broker", o.Section)
	}
	acks, err := acksOpts(o.Acks)
	if err != nil {
		return nil, fmt.Errorf("%s.requiredacks: %w", o.Section, err)
	}
	c, err := codec(o.Compress)
	if err != nil {
		return nil, fmt.Errorf("%s.compression: %w", o.Section, err)
	}
	part, err := partitioner(o.Balancer)
	if err != nil {
		return nil, fmt.Errorf("%s.balancer: %w", o.Section, err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	clientID := o.ClientID
	if clientID == "" {
		clientID = "saker"
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(o.Brokers...),
		kgo.DefaultProduceTopic(o.Topic),
		kgo.ClientID(clientID),
		kgo.RecordPartitioner(part),
		kgo.ProducerBatchCompression(c),
		// The engine batches; records are sent as soon as a send asks.
		kgo.ProducerLinger(0),
		// No record outlives the attempt that produced it: the engine retries, not the client.
		kgo.RecordDeliveryTimeout(timeout),
		kgo.ProduceRequestTimeout(timeout),
		kgo.DialTimeout(min(timeout, 10*time.Second)),
	}
	opts = append(opts, acks...)
	if o.NoIdempotence {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if o.SASL != nil {
		opts = append(opts, kgo.SASL(o.SASL))
	}
	if o.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(o.TLS))
	}
	if o.TopicCreation {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}
	if o.Log != nil {
		opts = append(opts, kgo.WithLogger(logger{o.Log}))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Section, err)
	}
	return &Producer{name: o.Name, topic: o.Topic, cl: cl}, nil
}

// Name implements delivery.Output.
func (p *Producer) Name() string { return p.name }

// Send produces one event and waits for the broker's acknowledgement (per requiredacks).
func (p *Producer) Send(ctx context.Context, ev *event.Event) error {
	err := p.SendBatch(ctx, []*event.Event{ev})
	var be *delivery.BatchError
	if errors.As(err, &be) {
		return be.Failed[0]
	}
	return err
}

// SendBatch produces the events in one go. Records fail alone (a partition without
// leader) or with the whole request (a record over the broker's size limit fails the records
// sent with it): when every record failed for the same permanent reason, the records are
// produced again one by one so that only the culprit fails for good; failures are reported
// per item, and as one error when every record failed for the same reason.
func (p *Producer) SendBatch(ctx context.Context, evs []*event.Event) error {
	recs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		recs[i] = &kgo.Record{Value: ev.JSON()}
	}
	failed, common := p.produce(ctx, recs)
	if common != nil && len(recs) > 1 && delivery.IsPermanent(common) && ctx.Err() == nil {
		failed = map[int]error{}
		for i, r := range recs {
			one := &kgo.Record{Value: r.Value}
			if f, _ := p.produce(ctx, []*kgo.Record{one}); f[0] != nil {
				failed[i] = f[0]
			}
		}
		common = nil
	}
	switch {
	case len(failed) == 0:
		return nil
	case common != nil && len(recs) > 1:
		return common
	}
	return &delivery.BatchError{Failed: failed}
}

// produce sends recs and waits; common is the error when every record failed with the same
// one.
func (p *Producer) produce(ctx context.Context, recs []*kgo.Record) (failed map[int]error, common error) {
	failed = map[int]error{}
	var first error
	same := true
	for i, r := range p.cl.ProduceSync(ctx, recs...) {
		if r.Err == nil {
			continue
		}
		if first == nil {
			first = r.Err
		} else if r.Err.Error() != first.Error() {
			same = false
		}
		failed[i] = p.classify(r.Err)
	}
	if same && len(failed) == len(recs) {
		common = failed[0]
	}
	return failed, common
}

// classify wraps err with the topic and marks what a retry cannot fix as permanent.
func (p *Producer) classify(err error) error {
	wrapped := fmt.Errorf("%s: produce to topic %s: %w", p.name, p.topic, err)
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge),
		errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.InvalidTopicException),
		errors.Is(err, kerr.CorruptMessage):
		return delivery.Permanent(wrapped)
	}
	return wrapped
}

// Close flushes nothing (every send waited for its records) and closes the connections.
func (p *Producer) Close() error {
	p.cl.Close()
	return nil
}

// logger passes franz-go's warnings and errors to slog (its info and debug are chatty).
type logger struct{ l *slog.Logger }

func (l logger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l logger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		l.l.Error("kafka client: "+msg, keyvals...)
	case kgo.LogLevelWarn:
		l.l.Warn("kafka client: "+msg, keyvals...)
	}
}
