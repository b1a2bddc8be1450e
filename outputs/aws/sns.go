package aws

import (
	"context"
	"fmt"
	"log/slog"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// SNS is the awssns output. As falcosidekick: by default the message is the event's output
// line and the rule, priority, source, tags, hostname and output fields are message
// attributes; with aws.sns.rawjson the message is the event's Falco JSON.
type SNS struct {
	client   *sns.Client
	topicArn string
	rawJSON  bool
	log      *slog.Logger
}

// NewSNS builds the output from the aws section.
func NewSNS(c *Config, env outputs.Env) (*SNS, error) {
	cfg, err := c.parse()
	if err != nil {
		return nil, err
	}
	if cfg.SNS.TopicArn == "" {
		return nil, fmt.Errorf("aws.sns.topicarn is empty")
	}
	base, err := sdkConfig(cfg, env.Logger())
	if err != nil {
		return nil, err
	}
	endpoint := cfg.SNS.Endpoint
	client := sns.NewFromConfig(base, func(o *sns.Options) {
		if endpoint != "" {
			o.BaseEndpoint = sdkaws.String(endpoint)
		}
	})
	return &SNS{client: client, topicArn: cfg.SNS.TopicArn, rawJSON: cfg.SNS.RawJSON, log: env.Logger()}, nil
}

// Name implements delivery.Output.
func (s *SNS) Name() string { return nameSNS }

// Send publishes the event to the topic.
func (s *SNS) Send(ctx context.Context, ev *event.Event) error {
	out, err := s.client.Publish(ctx, snsInput(s.topicArn, s.rawJSON, ev))
	if err != nil {
		return classify("sns Publish to "+s.topicArn, err)
	}
	s.log.Debug("published", "message_id", sdkaws.ToString(out.MessageId))
	return nil
}

// snsInput builds the Publish request for ev.
func snsInput(topicArn string, rawJSON bool, ev *event.Event) *sns.PublishInput {
	in := &sns.PublishInput{TopicArn: sdkaws.String(topicArn)}
	if rawJSON {
		// falcosidekick's rawjson sends the JSON alone; saker keeps the base attributes too
		// so subscription filter policies work in both modes.
		in.Message = sdkaws.String(safeJSON(ev.JSON()))
		in.MessageAttributes = snsAttributes(baseAttributes(ev))
		return in
	}
	msg := validChars(ev.Output)
	if msg == "" {
		// SNS refuses an empty message; an event without an output line still has a rule.
		msg = validChars(ev.Rule)
	}
	in.Message = sdkaws.String(msg)
	attrs := baseAttributes(ev)
	taken := make(map[string]bool, len(attrs))
	for _, a := range attrs {
		taken[a.Name] = true
	}
	in.MessageAttributes = snsAttributes(append(attrs, fieldAttributes(ev, taken)...))
	return in
}

func snsAttributes(attrs []attribute) map[string]types.MessageAttributeValue {
	m := make(map[string]types.MessageAttributeValue, len(attrs))
	for _, a := range attrs {
		m[a.Name] = types.MessageAttributeValue{DataType: sdkaws.String(a.DataType), StringValue: sdkaws.String(a.Value)}
	}
	return m
}
