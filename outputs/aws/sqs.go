package aws

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// SQS's limits on one SendMessageBatch call.
const (
	sqsMaxBatch      = 10
	sqsMaxBatchBytes = 256 << 10
)

// SQS is the awssqs output: each event's Falco JSON as one message, with the rule,
// priority, source, tags and hostname as message attributes, sent 10 at a time.
type SQS struct {
	client *sqs.Client
	url    string
	log    *slog.Logger
}

// NewSQS builds the output from the aws section.
func NewSQS(c *Config, env outputs.Env) (*SQS, error) {
	cfg, err := c.parse()
	if err != nil {
		return nil, err
	}
	if cfg.SQS.URL == "" {
		return nil, fmt.Errorf("aws.sqs.url is empty")
	}
	base, err := sdkConfig(cfg, env.Logger())
	if err != nil {
		return nil, err
	}
	endpoint := cfg.SQS.Endpoint
	client := sqs.NewFromConfig(base, func(o *sqs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = sdkaws.String(endpoint)
		}
	})
	return &SQS{client: client, url: cfg.SQS.URL, log: env.Logger()}, nil
}

// Name implements delivery.Output.
func (q *SQS) Name() string { return nameSQS }

// Send sends one message (used when batching is turned off: aws.sqs.batch.maxevents 1).
func (q *SQS) Send(ctx context.Context, ev *event.Event) error {
	e := sqsEntry(0, ev)
	_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: sdkaws.String(q.url),
		MessageBody: e.MessageBody, MessageAttributes: e.MessageAttributes})
	return classify("sqs SendMessage to "+httpout.Redact(q.url), err)
}

// SendBatch sends the events with SendMessageBatch, splitting them into calls that respect
// SQS's limits (the engine's batch.maxbytes counts JSON only and may overshoot by one event).
// Entries SQS refuses are reported one by one: permanent when SQS says the sender is at fault
// (a message too large, an invalid attribute), transient otherwise.
func (q *SQS) SendBatch(ctx context.Context, evs []*event.Event) error {
	return sendChunks(len(evs), sqsChunks(evs), func(chunk []int) (map[int]error, error) {
		entries := make([]types.SendMessageBatchRequestEntry, len(chunk))
		for i, idx := range chunk {
			entries[i] = sqsEntry(idx, evs[idx])
		}
		out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: sdkaws.String(q.url), Entries: entries})
		if err != nil {
			return nil, classify("sqs SendMessageBatch to "+httpout.Redact(q.url), err)
		}
		failed := map[int]error{}
		done := make(map[string]bool, len(chunk))
		for _, ok := range out.Successful {
			done[sdkaws.ToString(ok.Id)] = true
		}
		for _, bad := range out.Failed {
			id := sdkaws.ToString(bad.Id)
			idx, convErr := strconv.Atoi(id)
			if convErr != nil || idx < 0 || idx >= len(evs) {
				continue
			}
			done[id] = true
			err := fmt.Errorf("sqs SendMessageBatch to %s: entry refused: %s: %s", httpout.Redact(q.url),
				sdkaws.ToString(bad.Code), sdkaws.ToString(bad.Message))
			if bad.SenderFault {
				err = delivery.Permanent(err)
			}
			failed[idx] = err
		}
		// An entry SQS reported neither way was not confirmed: send it again.
		for _, idx := range chunk {
			if !done[strconv.Itoa(idx)] {
				failed[idx] = fmt.Errorf("sqs SendMessageBatch to %s: entry %d not acknowledged", httpout.Redact(q.url), idx)
			}
		}
		return failed, nil
	})
}

// sqsEntry is the batch entry of evs[idx]; its Id is the index, to map failures back.
func sqsEntry(idx int, ev *event.Event) types.SendMessageBatchRequestEntry {
	attrs := baseAttributes(ev)
	m := make(map[string]types.MessageAttributeValue, len(attrs))
	for _, a := range attrs {
		m[a.Name] = types.MessageAttributeValue{DataType: sdkaws.String(a.DataType), StringValue: sdkaws.String(a.Value)}
	}
	return types.SendMessageBatchRequestEntry{Id: sdkaws.String(strconv.Itoa(idx)),
		MessageBody: sdkaws.String(safeJSON(ev.JSON())), MessageAttributes: m}
}

// sqsEntrySize is what an entry counts against the batch payload limit.
func sqsEntrySize(ev *event.Event) int {
	n := len(ev.JSON())
	for _, a := range baseAttributes(ev) {
		n += a.size()
	}
	return n
}

// sqsChunks groups the indexes of evs into calls of at most 10 entries and 256 KiB.
func sqsChunks(evs []*event.Event) [][]int {
	return chunks(len(evs), sqsMaxBatch, sqsMaxBatchBytes, func(i int) int { return sqsEntrySize(evs[i]) }, nil)
}
