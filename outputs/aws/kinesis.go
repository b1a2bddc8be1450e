package aws

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// Kinesis's limits on one PutRecords call.
const (
	kinesisMaxRecords    = 500
	kinesisMaxBatchBytes = 5 << 20 // data and partition keys of all records
)

// kinesisBatch is the default batching of awskinesis and yandexdatastreams.
var kinesisBatch = delivery.BatchPolicy{MaxEvents: kinesisMaxRecords, MaxBytes: 4 << 20, FlushInterval: 200 * time.Millisecond}

// Kinesis puts each event's Falco JSON as one record, with PutRecords when batching (the
// default). It serves awskinesis and yandexdatastreams (Yandex Data Streams speaks the
// Kinesis API).
type Kinesis struct {
	name   string
	client *kinesis.Client
	stream string
	log    *slog.Logger
}

// NewKinesis builds the awskinesis output from the aws section.
func NewKinesis(c *Config, env outputs.Env) (*Kinesis, error) {
	cfg, err := c.parse()
	if err != nil {
		return nil, err
	}
	if cfg.Kinesis.StreamName == "" {
		return nil, fmt.Errorf("aws.kinesis.streamname is empty")
	}
	base, err := sdkConfig(cfg, env.Logger())
	if err != nil {
		return nil, err
	}
	return newKinesis(nameKinesis, base, cfg.Kinesis.Endpoint, cfg.Kinesis.StreamName, env.Logger()), nil
}

func newKinesis(name string, base sdkaws.Config, endpoint, stream string, log *slog.Logger) *Kinesis {
	client := kinesis.NewFromConfig(base, func(o *kinesis.Options) {
		if endpoint != "" {
			o.BaseEndpoint = sdkaws.String(endpoint)
		}
	})
	return &Kinesis{name: name, client: client, stream: stream, log: log}
}

// Name implements delivery.Output.
func (k *Kinesis) Name() string { return k.name }

// Send puts one record (batching turned off: NAME.batch.maxevents 1).
func (k *Kinesis) Send(ctx context.Context, ev *event.Event) error {
	out, err := k.client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: sdkaws.String(k.stream),
		Data: ev.JSON(), PartitionKey: sdkaws.String(partitionKey(ev))})
	if err != nil {
		return classify("kinesis PutRecord to stream "+k.stream, err)
	}
	k.log.Debug("record put", "shard", sdkaws.ToString(out.ShardId), "sequence", sdkaws.ToString(out.SequenceNumber))
	return nil
}

// SendBatch puts the events with PutRecords, in calls within Kinesis's limits. Records the
// stream refused are reported one by one: throttling and internal failures are transient; a
// KMS error other than throttling is permanent (the stream's key is unusable).
func (k *Kinesis) SendBatch(ctx context.Context, evs []*event.Event) error {
	return sendChunks(len(evs), kinesisChunks(evs), func(chunk []int) (map[int]error, error) {
		records := make([]types.PutRecordsRequestEntry, len(chunk))
		for i, idx := range chunk {
			records[i] = types.PutRecordsRequestEntry{Data: evs[idx].JSON(), PartitionKey: sdkaws.String(partitionKey(evs[idx]))}
		}
		out, err := k.client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: sdkaws.String(k.stream), Records: records})
		if err != nil {
			return nil, classify("kinesis PutRecords to stream "+k.stream, err)
		}
		failed := map[int]error{}
		// The answer lists one result per record, in order.
		for i, idx := range chunk {
			if i >= len(out.Records) {
				failed[idx] = fmt.Errorf("kinesis PutRecords to stream %s: record %d not acknowledged", k.stream, idx)
				continue
			}
			r := out.Records[i]
			code := sdkaws.ToString(r.ErrorCode)
			if code == "" && r.SequenceNumber != nil {
				continue
			}
			err := fmt.Errorf("kinesis PutRecords to stream %s: record refused: %s: %s", k.stream, code, sdkaws.ToString(r.ErrorMessage))
			if strings.HasPrefix(code, "KMS") && code != "KMSThrottlingException" {
				err = delivery.Permanent(err)
			}
			failed[idx] = err
		}
		return failed, nil
	})
}

// partitionKey spreads records over the shards as falcosidekick's random UUID did; the
// event's own UUID does that too and keeps the record traceable.
func partitionKey(ev *event.Event) string {
	if ev.UUID != "" && len(ev.UUID) <= 256 {
		return ev.UUID
	}
	return randomHex(16)
}

// kinesisChunks groups the indexes of evs into PutRecords calls of at most 500 records and
// 5 MiB.
func kinesisChunks(evs []*event.Event) [][]int {
	return chunks(len(evs), kinesisMaxRecords, kinesisMaxBatchBytes,
		func(i int) int { return len(evs[i].JSON()) + len(partitionKey(evs[i])) }, nil)
}

// streamNameRE is Kinesis's stream name pattern; Yandex Data Streams names are paths
// (/REGION/FOLDER/DATABASE/STREAM), so '/' is allowed too.
var streamNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.\-/]{1,512}$`)

func checkStreamName(key, name string) error {
	if name != "" && !streamNameRE.MatchString(name) {
		return fmt.Errorf("%s must be a stream name (letters, digits, _ . - /), got %q", key, name)
	}
	return nil
}
