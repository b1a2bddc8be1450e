package delivery

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// WhenFull says what happens to a new event when an output's queue is full.
const (
	WhenFullBlock      = "block"      // wait up to blocktimeout, then refuse the event (the input answers 503)
	WhenFullDropNewest = "dropnewest" // drop the new event for this output, counted
	WhenFullDropOldest = "dropoldest" // drop the oldest queued event, counted, and queue the new one
)

// RetryPolicy bounds the retries of one event.
type RetryPolicy struct {
	Initial     time.Duration `koanf:"initial" doc:"first retry delay (the base of the exponential backoff with full jitter)"`
	Max         time.Duration `koanf:"max" doc:"largest delay between two attempts"`
	MaxElapsed  time.Duration `koanf:"maxelapsed" doc:"give up (dead-letter) once an event has been retried this long; 0 for no limit"`
	MaxAttempts int           `koanf:"maxattempts" doc:"give up after this many attempts; 0 for no limit (maxelapsed still applies)"`
	// MaxDeliveries stops an event that kills saker (or every replica in turn) from
	// crash-looping it forever: each crash restarts its attempts and elapsed time. It is off
	// by default because a graceful restart while the output is down counts as well.
	MaxDeliveries int `koanf:"maxdeliveries" doc:"with a durable bus, give up (dead-letter) an event handed out this many times without being settled (saker was killed or restarted while delivering it each time); 0 for no limit"`
}

// BatchPolicy groups events for outputs whose API takes batches; ignored by the others.
type BatchPolicy struct {
	MaxEvents     int           `koanf:"maxevents" doc:"events per batch at most"`
	MaxBytes      int           `koanf:"maxbytes" doc:"JSON bytes per batch at most"`
	FlushInterval time.Duration `koanf:"flushinterval" doc:"send a partial batch after this long"`
}

// Policy is the delivery behaviour of one output. The top-level keys set it for every output;
// an output's own keys (slack.queuesize) override them.
type Policy struct {
	// Control is what a reload applies to a running output without rebuilding it; every
	// other field rebuilds the output (see Engine.Reconfigure and Engine.Replace).
	Control               `koanf:",squash"`
	QueueSize             int           `koanf:"queuesize" doc:"events buffered per output"`
	MaxConcurrentRequests int           `koanf:"maxconcurrentrequests" doc:"parallel sends per output"`
	Timeout               time.Duration `koanf:"timeout" doc:"deadline of one delivery attempt"`
	WhenFull              string        `koanf:"whenfull" doc:"block, dropnewest or dropoldest"`
	BlockTimeout          time.Duration `koanf:"blocktimeout" doc:"with whenfull=block, how long an input waits for room before answering 503"`
	Retry                 RetryPolicy   `koanf:"retry"`
	Batch                 BatchPolicy   `koanf:"batch"`
}

// Control is an output's routing and noise control, applied by the engine for every output
// alike (see docs/routing-and-auth.md). Being one comparable struct, a reload tells a change
// of these settings from a change of the rest of a Policy without listing fields.
type Control struct {
	MinimumPriority string          `koanf:"minimumpriority" doc:"events below this priority are not sent to the output"`
	Filter          string          `koanf:"filter" doc:"condition in the rule language an event must meet to reach the output, e.g. priority >= warning and output_fields[k8s.ns.name] in (prod); empty: every event"`
	Dedup           DedupPolicy     `koanf:"dedup"`
	RateLimit       RateLimitPolicy `koanf:"ratelimit"`
}

// WithoutControl is p with its Control zeroed: what must be equal for a reload to keep the
// running output.
func (p Policy) WithoutControl() Policy {
	p.Control = Control{}
	return p
}

// DedupPolicy suppresses identical alerts: within Window after an alert reaches the output,
// alerts with the same key are counted instead of sent.
type DedupPolicy struct {
	Window time.Duration `koanf:"window" doc:"identical alerts within this window after one is sent are suppressed (counted; the next one sent carries output_fields[saker.suppressed] and [saker.suppressed_window], and chat messages say it); 0: off"`
	Key    string        `koanf:"key" doc:"Go template over the event naming what makes alerts identical, e.g. {{.Rule}}/{{index .OutputFields \"k8s.pod.name\"}}; empty: the rule, the priority and the output text (without its leading timestamp)"`
}

// RateLimitPolicy paces an output (a token bucket): events beyond the rate wait in the queue,
// none is dropped by the limiter.
type RateLimitPolicy struct {
	Rate  float64 `koanf:"rate" doc:"events per second sent to the output at most (e.g. 1 for a Slack webhook); 0: unlimited"`
	Burst int     `koanf:"burst" doc:"events sent at once before the rate applies; 0: 1"`
}

// DefaultPolicy is what an output gets when nothing is configured.
func DefaultPolicy() Policy {
	return Policy{
		QueueSize:             10000,
		MaxConcurrentRequests: 4,
		Timeout:               10 * time.Second,
		WhenFull:              WhenFullBlock,
		BlockTimeout:          time.Second,
		Retry:                 RetryPolicy{Initial: 500 * time.Millisecond, Max: 30 * time.Second, MaxElapsed: 10 * time.Minute},
	}
}

// Validate names the first invalid key; prefix is the output's key path ("" for top level).
// The filter and the dedup key are compiled by Prepare, which calls Validate.
func (p Policy) Validate(prefix string) error {
	key := func(k string) string { return keyPath(prefix, k) }
	if _, err := event.ParsePriority(p.MinimumPriority); err != nil {
		return fmt.Errorf("%s: %w", key("minimumpriority"), err)
	}
	switch {
	case p.QueueSize <= 0:
		return fmt.Errorf("%s must be positive, got %d", key("queuesize"), p.QueueSize)
	case p.MaxConcurrentRequests <= 0:
		return fmt.Errorf("%s must be positive, got %d", key("maxconcurrentrequests"), p.MaxConcurrentRequests)
	case p.Timeout <= 0:
		return fmt.Errorf("%s must be positive, got %s", key("timeout"), p.Timeout)
	case p.WhenFull != WhenFullBlock && p.WhenFull != WhenFullDropNewest && p.WhenFull != WhenFullDropOldest:
		return fmt.Errorf("%s must be block, dropnewest or dropoldest, got %q", key("whenfull"), p.WhenFull)
	case p.BlockTimeout < 0:
		return fmt.Errorf("%s must not be negative, got %s", key("blocktimeout"), p.BlockTimeout)
	case p.Retry.Initial <= 0:
		return fmt.Errorf("%s must be positive, got %s", key("retry.initial"), p.Retry.Initial)
	case p.Retry.Max < p.Retry.Initial:
		return fmt.Errorf("%s (%s) must not be below retry.initial (%s)", key("retry.max"), p.Retry.Max, p.Retry.Initial)
	case p.Retry.MaxElapsed < 0:
		return fmt.Errorf("%s must not be negative, got %s", key("retry.maxelapsed"), p.Retry.MaxElapsed)
	case p.Retry.MaxAttempts < 0:
		return fmt.Errorf("%s must not be negative, got %d", key("retry.maxattempts"), p.Retry.MaxAttempts)
	case p.Retry.MaxDeliveries < 0:
		return fmt.Errorf("%s must not be negative, got %d", key("retry.maxdeliveries"), p.Retry.MaxDeliveries)
	case p.Batch.MaxEvents < 0:
		return fmt.Errorf("%s must not be negative, got %d", key("batch.maxevents"), p.Batch.MaxEvents)
	case p.Batch.MaxBytes < 0:
		return fmt.Errorf("%s must not be negative, got %d", key("batch.maxbytes"), p.Batch.MaxBytes)
	case p.Dedup.Window < 0:
		return fmt.Errorf("%s must not be negative, got %s", key("dedup.window"), p.Dedup.Window)
	case p.RateLimit.Rate < 0 || math.IsNaN(p.RateLimit.Rate) || math.IsInf(p.RateLimit.Rate, 0):
		return fmt.Errorf("%s must be a positive number of events per second or 0, got %v", key("ratelimit.rate"), p.RateLimit.Rate)
	case p.RateLimit.Burst < 0:
		return fmt.Errorf("%s must not be negative, got %d", key("ratelimit.burst"), p.RateLimit.Burst)
	case p.Batch.FlushInterval < 0:
		return fmt.Errorf("%s must not be negative, got %s", key("batch.flushinterval"), p.Batch.FlushInterval)
	}
	return nil
}

// keyPath is the configuration key k of the output whose key path is prefix ("" for top
// level).
func keyPath(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// backoffDelay is exponential backoff with full jitter: a random delay in
// [0, min(max, initial*2^retry)], so many failing senders don't retry in lockstep.
func (r RetryPolicy) backoffDelay(retry int) time.Duration {
	ceiling := r.Initial
	for i := 0; i < retry && ceiling < r.Max; i++ {
		ceiling *= 2
	}
	if ceiling > r.Max {
		ceiling = r.Max
	}
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}
