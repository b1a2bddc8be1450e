// Package delivery is saker's delivery engine: one bounded queue per output, a worker pool
// draining it, per-attempt timeouts, retry with exponential backoff and full jitter, batching,
// and a dead-letter file. Outputs only say how to send; every policy lives here, once.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// Output is a destination. An output implements Sender, BatchSender, or both (the engine
// prefers SendBatch when batching is configured). Outputs never retry, queue or time out on
// their own: the engine calls them with a context carrying the per-attempt deadline and
// decides from the returned error whether to try again.
type Output interface {
	// Name identifies the output in metrics, logs, /healthz and `POST /test?output=NAME`.
	Name() string
}

// Sender delivers one event per call.
type Sender interface {
	Output
	Send(ctx context.Context, ev *event.Event) error
}

// BatchSender delivers several events per call, for APIs that take batches (Loki, _bulk,
// SQS SendMessageBatch). Return a *BatchError when only some items failed.
type BatchSender interface {
	Output
	SendBatch(ctx context.Context, evs []*event.Event) error
}

// Closer is implemented by outputs holding connections; Close runs after the queue drained.
type Closer interface {
	Close() error
}

// permanentError marks an error that retrying cannot fix (400, 401, 404, a rejected payload).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the event goes to the dead-letter file at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// retryAfterError carries a server's Retry-After hint.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as transient with the delay the server asked for (HTTP 429/503
// Retry-After, Slack's rate limit). The engine waits at least that long before the next try.
func RetryAfter(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, after: after}
}

// RetryAfterHint returns the delay requested through RetryAfter, if any.
func RetryAfterHint(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}

// BatchError reports per-item failures of a SendBatch call: Failed maps an index in the batch
// to its error (which may be Permanent). Items not listed were delivered.
type BatchError struct {
	Failed map[int]error
}

func (e *BatchError) Error() string {
	for i, err := range e.Failed {
		return fmt.Sprintf("%d of the batch failed, e.g. item %d: %v", len(e.Failed), i, err)
	}
	return "batch failed"
}
