// Package httpin is saker's HTTP front door: Falco's HTTP output on POST /, POST /test,
// /ping, /healthz and /metrics, plus whatever other inputs mount (POST /k8s-audit).
package httpin

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
	"github.com/saker-dev/saker/engine/pipeline"
)

// Options configure the handlers.
type Options struct {
	MaxBodySize int64 // bytes; larger bodies get 413
	Version     string
}

// Server holds the handlers' dependencies.
type Server struct {
	opts     Options
	pipe     *pipeline.Pipeline
	engine   *delivery.Engine
	metrics  *metrics.Metrics
	log      *slog.Logger
	mux      *http.ServeMux
	draining atomic.Bool
	started  time.Time
}

// New builds the handler set.
func New(opts Options, pipe *pipeline.Pipeline, eng *delivery.Engine, m *metrics.Metrics, log *slog.Logger) *Server {
	if opts.MaxBodySize <= 0 {
		opts.MaxBodySize = 1 << 20
	}
	s := &Server{opts: opts, pipe: pipe, engine: eng, metrics: m, log: log, mux: http.NewServeMux(), started: time.Now()}
	s.mux.HandleFunc("/", s.handleEvent)
	s.mux.HandleFunc("/test", s.handleTest)
	s.mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("pong\n")) })
	s.mux.HandleFunc("/healthz", s.handleHealth)
	s.mux.Handle("/metrics", m.Handler())
	for _, st := range []string{"accepted", "rejected"} {
		m.Inputs.WithLabelValues("requests", st)
	}
	return s
}

// Handle mounts another input, e.g. POST /k8s-audit.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// SetDraining makes /healthz report "draining" during shutdown.
func (s *Server) SetDraining() { s.draining.Store(true) }

type errorBody struct {
	Error string `json:"error"`
}

// WriteError answers with {"error": msg} and the status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type acceptedBody struct {
	Status  string   `json:"status"`
	UUID    string   `json:"uuid"`
	Outputs []string `json:"outputs"`
	Dropped []string `json:"dropped,omitempty"`
}

func (s *Server) handleEvent(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		WriteError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.reject(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: POST a Falco event JSON", r.Method))
		return
	}
	s.accept(w, r, "")
}

func (s *Server) reject(w http.ResponseWriter, status int, msg string) {
	s.metrics.Inputs.WithLabelValues("requests", "rejected").Inc()
	WriteError(w, status, msg)
}

// accept decodes, validates and queues one event.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, only string) {
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxBodySize)
	ev, err := event.Decode(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) || strings.Contains(err.Error(), "http: request body too large") {
			s.reject(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than maxbodysize (%d bytes)", s.opts.MaxBodySize))
			return
		}
		s.reject(w, http.StatusBadRequest, err.Error())
		return
	}
	s.submit(w, r, ev, only)
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, ev *event.Event, only string) {
	res, err := s.pipe.Accept(r.Context(), ev, only)
	if err != nil {
		var full *delivery.FullError
		if errors.As(err, &full) || errors.Is(err, delivery.ErrClosed) {
			s.metrics.Inputs.WithLabelValues("requests", "rejected").Inc()
			w.Header().Set("Retry-After", "1")
			WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		s.reject(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.metrics.Inputs.WithLabelValues("requests", "accepted").Inc()
	outs := res.Outputs
	if outs == nil {
		outs = []string{}
	}
	writeJSON(w, http.StatusOK, acceptedBody{Status: "accepted", UUID: ev.UUID, Outputs: outs, Dropped: res.Dropped})
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
	s.submit(w, r, ev, only)
}

type healthBody struct {
	Status  string                  `json:"status"`
	Version string                  `json:"version"`
	Uptime  string                  `json:"uptime"`
	Outputs []delivery.OutputHealth `json:"outputs"`
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	status := "ok"
	code := http.StatusOK
	if s.draining.Load() {
		status, code = "draining", http.StatusServiceUnavailable
	}
	writeJSON(w, code, healthBody{Status: status, Version: s.opts.Version,
		Uptime: time.Since(s.started).Round(time.Second).String(), Outputs: s.engine.Health()})
}
