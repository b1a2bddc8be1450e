package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"sync"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// CloudWatch Logs' limits on one PutLogEvents call: 10,000 events, 1 MiB counting each
// message's UTF-8 bytes plus 26, and all events within 24 hours.
const (
	cwlMaxEvents      = 10000
	cwlMaxBatchBytes  = 1 << 20
	cwlEventOverhead  = 26
	cwlMaxSpan        = 24 * time.Hour
	cwlDefaultStream  = "falcosidekick-logstream" // falcosidekick's name, so existing queries keep working
	cwlResourceExists = "ResourceAlreadyExistsException"
	cwlNotFound       = "ResourceNotFoundException"
)

// CloudWatchLogs is the awscloudwatchlogs output: each event's Falco JSON as one log event
// stamped with the event's time, sent in PutLogEvents batches.
type CloudWatchLogs struct {
	client *cloudwatchlogs.Client
	group  string
	stream string
	log    *slog.Logger

	// mu guards ready: the stream is known to exist (created, or a put succeeded).
	mu    sync.Mutex
	ready bool
}

// NewCloudWatchLogs builds the output from the aws section. It does not contact the
// service: the first send creates the stream when needed.
func NewCloudWatchLogs(c *Config, env outputs.Env) (*CloudWatchLogs, error) {
	cfg, err := c.parse()
	if err != nil {
		return nil, err
	}
	if cfg.CloudWatchLogs.LogGroup == "" {
		return nil, fmt.Errorf("aws.cloudwatchlogs.loggroup is empty")
	}
	base, err := sdkConfig(cfg, env.Logger())
	if err != nil {
		return nil, err
	}
	endpoint := cfg.CloudWatchLogs.Endpoint
	client := cloudwatchlogs.NewFromConfig(base, func(o *cloudwatchlogs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = sdkaws.String(endpoint)
		}
	})
	w := &CloudWatchLogs{client: client, group: cfg.CloudWatchLogs.LogGroup, stream: cfg.CloudWatchLogs.LogStream, log: env.Logger()}
	if w.stream == "" {
		w.stream = cwlDefaultStream
	}
	return w, nil
}

// Name implements delivery.Output.
func (w *CloudWatchLogs) Name() string { return nameCloudWatchLogs }

// Send sends one event (batching turned off: aws.cloudwatchlogs.batch.maxevents 1).
func (w *CloudWatchLogs) Send(ctx context.Context, ev *event.Event) error {
	err := w.SendBatch(ctx, []*event.Event{ev})
	var be *delivery.BatchError
	if errors.As(err, &be) {
		return be.Failed[0] // the event's own error, permanent or not
	}
	return err
}

// SendBatch sends the events in chronological order (PutLogEvents requires it), split into
// calls within the service's limits. Events the service rejects as too old or expired are
// reported as permanent failures; too new (more than 2 hours ahead) as transient ones.
func (w *CloudWatchLogs) SendBatch(ctx context.Context, evs []*event.Event) error {
	order := make([]int, len(evs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return evs[order[a]].Time.Before(evs[order[b]].Time) })
	pos := chunks(len(order), cwlMaxEvents, cwlMaxBatchBytes,
		func(p int) int { return len(evs[order[p]].JSON()) + cwlEventOverhead },
		func(first, p int) bool { return evs[order[p]].Time.Sub(evs[order[first]].Time) > cwlMaxSpan })
	calls := make([][]int, len(pos))
	for i, c := range pos {
		calls[i] = make([]int, len(c))
		for j, p := range c {
			calls[i][j] = order[p]
		}
	}
	return sendChunks(len(evs), calls, func(call []int) (map[int]error, error) { return w.put(ctx, evs, call) })
}

// put sends the events evs[call...] (in chronological order) with one PutLogEvents call,
// creating the stream when it is missing.
func (w *CloudWatchLogs) put(ctx context.Context, evs []*event.Event, call []int) (map[int]error, error) {
	if err := w.ensureStream(ctx, false); err != nil {
		return nil, err
	}
	in := &cloudwatchlogs.PutLogEventsInput{LogGroupName: sdkaws.String(w.group), LogStreamName: sdkaws.String(w.stream),
		LogEvents: make([]types.InputLogEvent, len(call))}
	for i, idx := range call {
		in.LogEvents[i] = types.InputLogEvent{Message: sdkaws.String(string(evs[idx].JSON())),
			Timestamp: sdkaws.Int64(evs[idx].Time.UnixMilli())}
	}
	what := fmt.Sprintf("cloudwatchlogs PutLogEvents to %s/%s", w.group, w.stream)
	out, err := w.client.PutLogEvents(ctx, in)
	if apiCode(err) == cwlNotFound {
		// The stream was deleted, or never existed: create it, then try once more.
		if err := w.ensureStream(ctx, true); err != nil {
			return nil, err
		}
		out, err = w.client.PutLogEvents(ctx, in)
	}
	if err != nil {
		return nil, classify(what, err)
	}
	w.mu.Lock()
	w.ready = true
	w.mu.Unlock()
	return rejected(what, out.RejectedLogEventsInfo, call), nil
}

// rejected maps the events the service refused (indexes in the call) to batch errors.
func rejected(what string, info *types.RejectedLogEventsInfo, call []int) map[int]error {
	failed := map[int]error{}
	if info == nil {
		return failed
	}
	tooOld, expired, tooNew := int(sdkaws.ToInt32(info.TooOldLogEventEndIndex)), int(sdkaws.ToInt32(info.ExpiredLogEventEndIndex)), len(call)
	if info.TooNewLogEventStartIndex != nil {
		tooNew = int(*info.TooNewLogEventStartIndex)
	}
	for i, idx := range call {
		switch {
		case i < expired:
			failed[idx] = delivery.Permanent(fmt.Errorf("%s: event refused: older than the log group's retention", what))
		case i < tooOld:
			failed[idx] = delivery.Permanent(fmt.Errorf("%s: event refused: more than 14 days old", what))
		case i >= tooNew:
			failed[idx] = fmt.Errorf("%s: event refused: more than 2 hours in the future", what)
		}
	}
	return failed
}

// ensureStream creates the log stream the first time (as falcosidekick did when
// aws.cloudwatchlogs.logstream was empty), or again when force (a put found it missing). A
// configured stream is assumed to exist until a put says otherwise: creating it needs a
// permission (logs:CreateLogStream) a user who created it may not have granted.
func (w *CloudWatchLogs) ensureStream(ctx context.Context, force bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ready && !force || !force && w.stream != cwlDefaultStream {
		return nil
	}
	_, err := w.client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{
		LogGroupName: sdkaws.String(w.group), LogStreamName: sdkaws.String(w.stream)})
	switch code := apiCode(err); {
	case err == nil:
		w.log.Info("log stream created", "group", w.group, "stream", w.stream)
	case code == cwlResourceExists:
	case code == cwlNotFound:
		return delivery.Permanent(fmt.Errorf("cloudwatchlogs: log group %q (aws.cloudwatchlogs.loggroup) does not exist: %w", w.group, err))
	default:
		return classify(fmt.Sprintf("cloudwatchlogs CreateLogStream %s/%s", w.group, w.stream), err)
	}
	w.ready = true
	return nil
}

// logGroupRE and logStreamRE are CloudWatch Logs' name patterns.
var (
	logGroupRE  = regexp.MustCompile(`^[.\-_/#A-Za-z0-9]{1,512}$`)
	logStreamRE = regexp.MustCompile(`^[^:*]{1,512}$`)
)

func checkLogNames(group, stream string) error {
	if group != "" && !logGroupRE.MatchString(group) {
		return fmt.Errorf("aws.cloudwatchlogs.loggroup must be a log group name (letters, digits, . - _ / #), got %q", group)
	}
	if stream != "" && !logStreamRE.MatchString(stream) {
		return fmt.Errorf("aws.cloudwatchlogs.logstream must be a log stream name (no ':' or '*'), got %q", stream)
	}
	return nil
}

// apiCode is the service's error code, "" when err is nil or not a service error.
func apiCode(err error) string {
	var api interface{ ErrorCode() string }
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}
