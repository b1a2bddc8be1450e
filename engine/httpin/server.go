// Package httpin is saker's HTTP front door: Falco's HTTP output on POST /, POST /test,
// /ping, /healthz and /metrics, plus whatever other inputs mount (POST /k8s-audit).
package httpin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
	"github.com/saker-dev/saker/engine/pipeline"
)

// Options configure the handlers.
type Options struct {
	MaxBodySize int64 // bytes; larger bodies of POST /, /test and the other built-in paths get 413
	// MaxInFlightBody bounds the bytes of request bodies larger than 8 KiB read or held at
	// once across the listeners (0: DefaultMaxInFlightBody); past it, 503 with Retry-After.
	MaxInFlightBody int64
	Version         string
	// Auth protects every path but /healthz, /ping and /metrics (all with ProtectAll).
	Auth Credentials
}

// Server holds the handlers' dependencies.
type Server struct {
	opts     Options
	pipe     *pipeline.Pipeline
	engine   *delivery.Engine
	metrics  *metrics.Metrics
	log      *slog.Logger
	mux      *http.ServeMux
	limited  http.Handler // mux behind LimitBodies
	routes   map[string]*route
	root     *route // POST /, /test and every path without its own Route
	budget   *bodyBudget
	auth     *authenticator
	draining atomic.Bool
	started  time.Time

	accepted    *metrics.Counter
	unavailable prometheus.Counter
}

// New builds the handler set.
func New(opts Options, pipe *pipeline.Pipeline, eng *delivery.Engine, m *metrics.Metrics, log *slog.Logger) *Server {
	if opts.MaxBodySize <= 0 {
		opts.MaxBodySize = 1 << 20
	}
	if opts.MaxInFlightBody <= 0 {
		opts.MaxInFlightBody = DefaultMaxInFlightBody
	}
	s := &Server{opts: opts, pipe: pipe, engine: eng, metrics: m, log: log, mux: http.NewServeMux(), started: time.Now(),
		routes: map[string]*route{}, budget: &bodyBudget{max: opts.MaxInFlightBody}, auth: newAuthenticator(opts.Auth)}
	s.limited = s.LimitBodies(s.mux)
	s.mux.HandleFunc("/", s.handleEvent)
	s.mux.HandleFunc("/test", s.handleTest)
	s.mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("pong\n")) })
	s.mux.HandleFunc("/healthz", s.handleHealth)
	s.mux.Handle("/metrics", m.Handler())
	s.accepted = m.Input("requests", "accepted", "")
	m.Inputs.WithLabelValues("requests", "rejected") // falcosidekick shows it from the start
	s.unavailable = m.Unavailable.WithLabelValues("requests")
	s.root = &route{Route: Route{MaxBody: opts.MaxBodySize, LimitKey: "maxbodysize", Source: "requests"},
		rejected: &rejections{m: m, source: "requests"}}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "saker_inflight_body_bytes",
		Help: "Bytes of request bodies over 8 KiB being read or handled (bounded by maxinflightbodybytes)."},
		func() float64 { return float64(s.budget.used.Load()) }))
	return s
}

// Handle mounts another input under the limits of POST / (maxbodysize).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleSelfAuthenticated mounts a handler that checks credentials itself, under the limits
// of POST /: the listener's auth.* does not apply to pattern (a prefix when it ends in /).
// Call it before the listener serves.
func (s *Server) HandleSelfAuthenticated(pattern string, h http.Handler) {
	s.auth.own = append(s.auth.own, pattern)
	s.mux.Handle(pattern, h)
}

// HandleRoute mounts an input with its own body limit, e.g. POST /k8s-audit with
// k8saudit.maxbatchsize. pattern is an exact path.
func (s *Server) HandleRoute(pattern string, h http.Handler, r Route) {
	if r.MaxBody <= 0 {
		r.MaxBody = s.opts.MaxBodySize
	}
	if r.Source == "" {
		r.Source = "requests"
	}
	s.routes[pattern] = &route{Route: r, rejected: &rejections{m: s.metrics, source: r.Source}}
	s.mux.Handle(pattern, h)
}

// routeFor returns the limits of path.
func (s *Server) routeFor(path string) *route {
	if rt, ok := s.routes[path]; ok {
		return rt
	}
	return s.root
}

// ServeHTTP implements http.Handler, with the body limits of LimitBodies.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.limited.ServeHTTP(w, r) }

// SetDraining makes /healthz report "draining" during shutdown.
func (s *Server) SetDraining() { s.draining.Store(true) }

type errorBody struct {
	Error string `json:"error"`
}

// WriteError answers with {"error": msg} and the status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	writeAnswer(w, errorAnswer(status, msg))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// answer is the outcome of POST / or /test, written by either server (net/http or the
// fasthttp fast path) the same way.
type answer struct {
	status     int
	body       []byte
	retryAfter bool   // 503: ask the client to come back in a second
	allow      string // 405: the allowed method
	challenge  string // 401: WWW-Authenticate
}

func errorAnswer(status int, msg string) answer {
	b, _ := json.Marshal(errorBody{msg})
	return answer{status: status, body: append(b, '\n')}
}

func writeAnswer(w http.ResponseWriter, a answer) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(a.body))}
	if a.status >= 400 {
		h.Set("X-Content-Type-Options", "nosniff")
	}
	if a.retryAfter {
		h.Set("Retry-After", "1")
	}
	if a.allow != "" {
		h.Set("Allow", a.allow)
	}
	if a.challenge != "" {
		h.Set("WWW-Authenticate", a.challenge)
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

var jsonContentType = []string{"application/json"}

func (s *Server) handleEvent(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		WriteError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		writeAnswer(w, s.methodNotAllowed(r.Method))
		return
	}
	// ?output=NAME sends the event to that output only (saker deadletter replay re-sends an
	// event to the output that gave up on it, not again to the others).
	only := r.URL.Query().Get("output")
	if only != "" && !s.engine.Has(only) {
		writeAnswer(w, s.reject(http.StatusNotFound, fmt.Sprintf("output %q is not enabled; enabled: %s", only, strings.Join(s.engine.Outputs(), ", "))))
		return
	}
	writeAnswer(w, s.acceptFrom(r.Context(), http.MaxBytesReader(w, r.Body, s.opts.MaxBodySize), only))
}

func (s *Server) methodNotAllowed(method string) answer {
	a := s.reject(http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: POST a Falco event JSON", method))
	a.allow = http.MethodPost
	return a
}

func (s *Server) reject(status int, msg string) answer { return s.root.reject(status, msg) }

// acceptFrom decodes, validates and queues one event read from body.
func (s *Server) acceptFrom(ctx context.Context, body io.Reader, only string) answer {
	ev, err := event.Decode(body)
	return s.acceptDecoded(ctx, ev, err, only)
}

// acceptDecoded answers a decoding error, or queues the event.
func (s *Server) acceptDecoded(ctx context.Context, ev *event.Event, err error, only string) answer {
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return s.root.tooLarge(-1)
		}
		return s.reject(http.StatusBadRequest, err.Error())
	}
	return s.submit(ctx, ev, only)
}

func (s *Server) submit(ctx context.Context, ev *event.Event, only string) answer {
	res, err := s.pipe.Accept(ctx, ev, only)
	if err != nil {
		var full *delivery.FullError
		if errors.As(err, &full) || errors.Is(err, delivery.ErrClosed) || errors.Is(err, delivery.ErrUnavailable) {
			s.unavailable.Inc()
			a := s.reject(http.StatusServiceUnavailable, err.Error())
			a.retryAfter = true
			return a
		}
		return s.reject(http.StatusInternalServerError, err.Error())
	}
	s.accepted.Inc()
	return answer{status: http.StatusOK, body: acceptedBody(ev.UUID, res)}
}

// acceptedBody is {"status":"accepted","uuid":...,"outputs":[...]}, built by hand: this is
// the answer to every event, and reflection-based encoding showed in profiles.
func acceptedBody(uuid string, res pipeline.Result) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"status":"accepted","uuid":`...)
	q, _ := json.Marshal(uuid) // the client may have sent any string
	b = append(b, q...)
	b = appendNames(append(b, `,"outputs":`...), res.Outputs)
	if len(res.Dropped) > 0 {
		b = appendNames(append(b, `,"dropped":`...), res.Dropped)
	}
	return append(b, "}\n"...)
}

// appendNames appends a JSON array of output names (plain ASCII identifiers).
func appendNames(b []byte, names []string) []byte {
	b = append(b, '[')
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, n)
	}
	return append(b, ']')
}

// handleTest sends falcosidekick's test event to every output, or to ?output=NAME.
func (s *Server) handleTest(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "POST, GET")
		WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on /test", r.Method))
		return
	}
	only := r.URL.Query().Get("output")
	if only != "" && !s.engine.Has(only) {
		WriteError(w, http.StatusNotFound, fmt.Sprintf("output %q is not enabled; enabled: %s", only, strings.Join(s.engine.Outputs(), ", ")))
		return
	}
	ev := &event.Event{
		Output:       "This is a test from saker",
		Priority:     event.Debug,
		PriorityRaw:  "Debug",
		Rule:         pipeline.TestRule,
		Time:         time.Now().UTC(),
		Source:       "internal",
		Hostname:     "saker",
		Tags:         []string{"example", "test"},
		OutputFields: map[string]any{"proc.name": "saker", "user.name": "saker"},
	}
	writeAnswer(w, s.submit(r.Context(), ev, only))
}

type healthBody struct {
	Status  string                  `json:"status"`
	Version string                  `json:"version"`
	Uptime  string                  `json:"uptime"`
	Outputs []delivery.OutputHealth `json:"outputs"`
	Bus     delivery.BusState       `json:"bus"`
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	status := "ok"
	code := http.StatusOK
	if s.draining.Load() {
		status, code = "draining", http.StatusServiceUnavailable
	}
	writeJSON(w, code, healthBody{Status: status, Version: s.opts.Version,
		Uptime: time.Since(s.started).Round(time.Second).String(), Outputs: s.engine.Health(), Bus: s.engine.BusState()})
}
