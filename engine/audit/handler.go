package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/saker-dev/saker/engine/rules"
)

// DefaultMaxBatchSize is the default request body cap (k8saudit.maxbatchsize).
const DefaultMaxBatchSize = 12 << 20

// Limits bound what the receiver accepts. Zero values mean the defaults.
type Limits struct {
	// MaxBatchSize caps a request body in bytes (413 beyond it).
	MaxBatchSize int64
	// MaxEventSize caps one audit event in bytes (the event is skipped and counted).
	MaxEventSize int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBatchSize <= 0 {
		l.MaxBatchSize = DefaultMaxBatchSize
	}
	if l.MaxEventSize <= 0 {
		l.MaxEventSize = DefaultMaxEventSize
	}
	return l
}

// Handler is the kube-apiserver audit webhook receiver (POST /k8s-audit). It accepts an
// audit Event, an EventList (webhook batch mode) or a JSON array of them, evaluates each
// event against the rules and submits the alerts. Unlike Falco it answers a malformed body
// with 400 and the reason, skips (and counts and logs) bad items without dropping their
// batch, and answers 503 with Retry-After when the pipeline refuses an alert. Alerts of the
// batch submitted before the refusal stay submitted, so the apiserver's retry of the batch
// may deliver them twice: delivery is at least once.
type Handler struct {
	rules  *Rules
	sub    Submitter
	limits Limits
	log    *slog.Logger
	stats  Stats
	pool   sync.Pool // *handlerState
}

type handlerState struct {
	w   *worker
	buf bytes.Buffer
}

// NewHandler returns a receiver evaluating engine's rules and submitting alerts to sub. A
// nil logger discards logs.
func NewHandler(engine *rules.Engine, sub Submitter, limits Limits, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{rules: NewRules(engine), sub: sub, limits: limits.withDefaults(), log: log}
	h.pool.New = func() any { return &handlerState{w: newWorker(h.rules, h.limits.MaxEventSize)} }
	return h
}

// Rules is the holder of the handler's rules, to swap them or share them with a Follower.
func (h *Handler) Rules() *Rules { return h.rules }

// Stats returns the receiver's counters.
func (h *Handler) Stats() *Stats { return &h.stats }

// Result is the JSON body of a 200 answer: what the batch gave.
type Result struct {
	Events  int `json:"events"`
	Skipped int `json:"skipped"`
	Alerts  int `json:"alerts"`
}

// errSubmit marks a Submit failure so ServeHTTP can tell it from parse errors.
type errSubmit struct{ err error }

func (e *errSubmit) Error() string { return "alert not accepted: " + e.err.Error() }
func (e *errSubmit) Unwrap() error { return e.err }

// ServeHTTP handles one webhook request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: audit events are POSTed", r.Method))
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.Contains(ct, "application/json") {
		h.reject(w, r, http.StatusBadRequest, fmt.Sprintf("Content-Type %q is not application/json", ct))
		return
	}
	limit := h.limits.MaxBatchSize
	if r.ContentLength > limit {
		h.reject(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes is larger than the %d bytes limit (k8saudit.maxbatchsize)", r.ContentLength, limit))
		return
	}
	st := h.pool.Get().(*handlerState)
	defer h.release(st)
	st.buf.Reset()
	if r.ContentLength > 0 {
		// Room for the whole body and ReadFrom's final probe, so the buffer is allocated
		// once instead of doubling past twice the body.
		st.buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := st.buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.reject(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than the %d bytes limit (k8saudit.maxbatchsize)", limit))
			return
		}
		h.reject(w, r, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	h.stats.Payloads.Add(1)

	var res Result
	ctx := r.Context()
	now := time.Now()
	err := st.w.p.Parse(st.buf.Bytes(), func(ev *Event) error {
		res.Events++
		for _, a := range st.w.evaluate(ev, &h.stats) {
			res.Alerts++
			a.Received = now
			if err := h.sub.Submit(ctx, a); err != nil {
				return &errSubmit{err}
			}
		}
		return nil
	}, func(ie *ItemError) {
		res.Skipped++
		h.stats.skip(ie.Reason)
		h.log.Warn("k8s audit event skipped", "remote", r.RemoteAddr, "item", ie.Item, "offset", ie.Offset,
			"reason", ie.Reason.String(), "error", ie.Err)
	})
	var se *errSubmit
	switch {
	case errors.As(err, &se):
		h.stats.Unavailable.Add(1)
		w.Header().Set("Retry-After", "1")
		h.reject(w, r, http.StatusServiceUnavailable, se.Error())
		return
	case err != nil:
		reason := SkipMalformed
		if errors.Is(err, ErrNotAuditEvent) {
			reason = SkipNotAudit
		}
		h.stats.skip(reason)
		h.reject(w, r, http.StatusBadRequest, "body is not a k8s audit payload: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	body, _ := json.Marshal(res)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}

func (h *Handler) release(st *handlerState) {
	// Do not keep a huge batch's buffer around.
	if st.buf.Cap() > 1<<20 {
		st.buf = bytes.Buffer{}
	}
	st.w.p.ev.raw = nil
	h.pool.Put(st)
}

func (h *Handler) reject(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h.stats.Rejected.Add(1)
	h.log.Warn("k8s audit request rejected", "remote", r.RemoteAddr, "status", code, "error", msg)
	http.Error(w, msg, code)
}
