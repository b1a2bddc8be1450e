package httpin

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/saker-dev/saker/engine/metrics"
)

// DefaultMaxInFlightBody is the default budget of request-body bytes held at once across
// every listener (maxinflightbodybytes): five audit batches of the default 12 MiB ceiling.
const DefaultMaxInFlightBody = 64 << 20

// smallBody is what fasthttp reads of a body before the handler runs (it streams the rest).
// Bodies up to this size are in memory already when the limits are checked, so the
// in-flight budget does not count them: a Falco event is a few KiB, and a client holding
// the budget with slow large bodies must not starve them.
const smallBody = 8 << 10

// Route is how the listener treats the requests of one path before its handler runs.
type Route struct {
	// MaxBody is the largest body accepted, in bytes. A body announced larger
	// (Content-Length) gets 413 from its headers, before it is read; a chunked body is
	// cut off with 413 once it grows past MaxBody.
	MaxBody int64
	// LimitKey is the configuration key of MaxBody, named in the 413 answer.
	LimitKey string
	// Source labels the requests the listener refuses in
	// falcosecurity_falcosidekick_inputs_total{source,status="rejected"}.
	Source string
	// OnReject, when set, is also called for each request the listener refuses before the
	// handler ran (so an input's own counters see them too).
	OnReject func()
}

// route is a Route with the counters of its refusals.
type route struct {
	Route
	rejected *rejections
}

func (rt *route) reject(status int, msg string) answer {
	rt.rejected.count(status)
	if rt.OnReject != nil {
		rt.OnReject()
	}
	return errorAnswer(status, msg)
}

// rejections counts one input's refusals in inputs_total{source,status="rejected"}, and in
// StatsD by reason (inputs.<source>.rejected with error:<reason>, as falcosidekick tagged
// them). Each reason's counter is created on its first refusal, so that an input that never
// refused anything adds no zero series next to falcosidekick's source="requests".
type rejections struct {
	m      *metrics.Metrics
	source string
	by     sync.Map // status.reason -> *metrics.Counter
}

func (r *rejections) count(httpStatus int) { r.inc("rejected", rejectReason(httpStatus)) }

// inc counts one request of the input with status (rejected, unauthorized) and reason.
func (r *rejections) inc(status, reason string) {
	key := status + "." + reason
	c, ok := r.by.Load(key)
	if !ok {
		c, _ = r.by.LoadOrStore(key, r.m.Input(r.source, status, reason))
	}
	c.(*metrics.Counter).Inc()
}

// rejectReason names the refusal of an HTTP status for StatsD: falcosidekick's nobody (not
// a POST) and invalidjson, and saker's own refusals.
func rejectReason(status int) string {
	switch status {
	case http.StatusMethodNotAllowed:
		return metrics.RejectNoBody
	case http.StatusBadRequest:
		return metrics.RejectInvalidJSON
	case http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge:
		return metrics.RejectTooLarge
	case http.StatusServiceUnavailable:
		return metrics.RejectUnavailable
	case http.StatusNotFound:
		return metrics.RejectUnknownOutput
	case http.StatusRequestTimeout:
		return metrics.RejectTimeout
	}
	return metrics.RejectInternal
}

// tooLarge is the 413 answer of a route.
func (rt *route) tooLarge(announced int64) answer {
	if announced >= 0 {
		return rt.reject(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("body of %d bytes is larger than the %d bytes limit (%s)", announced, rt.MaxBody, rt.LimitKey))
	}
	return rt.reject(http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than the %d bytes limit (%s)", rt.MaxBody, rt.LimitKey))
}

// busy is the 503 answer when the in-flight body budget is spent.
func (rt *route) busy(b *bodyBudget) answer {
	a := rt.reject(http.StatusServiceUnavailable,
		fmt.Sprintf("too many large request bodies in flight (maxinflightbodybytes %d): retry later", b.max))
	a.retryAfter = true
	return a
}

// bodyBudget bounds the bytes of request bodies read or held at once, whatever their mix
// of paths and sizes, so concurrent large bodies cannot exhaust memory: past the budget a
// request gets 503 with Retry-After before its body is read.
type bodyBudget struct {
	max  int64
	used atomic.Int64
}

// acquire reserves n bytes. One request may always proceed when nothing else holds the
// budget, so a body under its route's limit is never refused forever.
func (b *bodyBudget) acquire(n int64) bool {
	for {
		used := b.used.Load()
		if used > 0 && used+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *bodyBudget) release(n int64) { b.used.Add(-n) }

// reservation is what a body of announced length holds of the budget: a chunked body
// (announced < 0) may grow to its route's limit.
func reservation(announced, limit int64) int64 {
	if announced < 0 {
		return limit
	}
	return announced
}

var errBodyTooLarge = errors.New("body larger than the limit")

// readBody reads a body of announced length (or chunked, announced < 0) up to limit bytes
// into a buffer of its exact size when the length is known.
func readBody(r io.Reader, announced, limit int64) ([]byte, error) {
	if announced >= 0 {
		b := make([]byte, announced)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("reading body: %w", err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, errBodyTooLarge
	}
	return b, nil
}

// LimitBodies applies the listener's per-path body limits and the in-flight budget to a
// net/http handler: the plain-HTTP side port and the dedicated audit listener use it, and
// so does ServeHTTP.
func (s *Server) LimitBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := s.routeFor(r.URL.Path)
		if s.auth.protects(r.URL.Path) && !s.auth.allows(r.Header.Get("Authorization")) {
			if r.ContentLength != 0 {
				w.Header().Set("Connection", "close") // the body is left unread
			}
			writeAnswer(w, s.unauthorized(rt))
			return
		}
		if r.ContentLength > rt.MaxBody {
			w.Header().Set("Connection", "close")
			writeAnswer(w, rt.tooLarge(r.ContentLength))
			return
		}
		if n := reservation(r.ContentLength, rt.MaxBody); n > smallBody {
			if !s.budget.acquire(n) {
				w.Header().Set("Connection", "close")
				writeAnswer(w, rt.busy(s.budget))
				return
			}
			defer s.budget.release(n)
		}
		r.Body = http.MaxBytesReader(w, r.Body, rt.MaxBody)
		h.ServeHTTP(w, r)
	})
}
