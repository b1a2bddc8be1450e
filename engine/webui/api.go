// Package webui serves the web UI (/ui/) and its JSON API (/api/v1/) over the event store:
// falcosidekick-ui's paths, parameters and answers, so its scripts and a falcosidekick with
// WEBUI_URL keep working, plus saker's own (an event by uuid, output health, a live stream).
package webui

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/store"
)

// MaxLimit caps the events of one search page; a larger limit gets this many.
const MaxLimit = 1000

// MaxExport caps the events of one export.
const MaxExport = 10000

// maxPage bounds the page number, so page*limit stays far from overflowing.
const maxPage = 1_000_000

// Options configure the handler.
type Options struct {
	Store *store.Store
	// Record takes the events posted to POST /api/v1/ (falcosidekick's WEBUI_URL); Store.Offer
	// when nil. With replicas sharing their UIs it is the shared feed.
	Record func(ev *event.Event, outputs []string) bool
	// Health reports the outputs (the delivery engine's Health); nil: none.
	Health func() []delivery.OutputHealth
	Log    *slog.Logger
	// Now is the clock of relative times (since=1h); time.Now when nil.
	Now func() time.Time
}

// Handler serves /api/v1/ and /ui/. It checks no credentials: mount it behind
// httpin.Protect.
type Handler struct {
	opts Options
	mux  *http.ServeMux
	// stop ends the live streams at shutdown.
	stop     chan struct{}
	stopOnce sync.Once
}

// New returns the handler.
func New(opts Options) *Handler {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Record == nil {
		opts.Record = opts.Store.Offer
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts, mux: http.NewServeMux(), stop: make(chan struct{})}
	h.mux.HandleFunc("GET /api/v1/events/search", h.search)
	h.mux.HandleFunc("GET /api/v1/events/count", h.count)
	h.mux.HandleFunc("GET /api/v1/events/count/{groupby}", h.countBy)
	h.mux.HandleFunc("GET /api/v1/events/timeline", h.timeline)
	h.mux.HandleFunc("GET /api/v1/events/stream", h.stream)
	h.mux.HandleFunc("GET /api/v1/events/export", h.export)
	h.mux.HandleFunc("GET /api/v1/events/{uuid}", h.get)
	h.mux.HandleFunc("GET /api/v1/outputs", h.outputs)
	h.mux.HandleFunc("POST /api/v1/{$}", h.add)
	h.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no API at %s %s", r.Method, r.URL.Path))
	})
	h.pages()
	return h
}

// Close ends the live streams (before the listener shuts down).
func (h *Handler) Close() { h.stopOnce.Do(func() { close(h.stop) }) }

// ServeHTTP serves the API and the pages.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, nil, status, errorBody{msg})
}

func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	if r != nil && r.URL.Query().Get("pretty") == "true" {
		enc.SetIndent("", " ")
	}
	_ = enc.Encode(v)
}

// statistics is falcosidekick-ui's statistics object; partial is saker's: a free-text scan
// stopped at its time budget and the totals are lower bounds.
type statistics struct {
	Returned  int64 `json:"returned,omitempty"`
	Distincts int64 `json:"distincts,omitempty"`
	All       int64 `json:"all"`
	Partial   bool  `json:"partial,omitempty"`
}

// args are the parsed query parameters.
type args struct {
	q     store.Query
	page  int // 1-based
	limit int
}

// list splits a comma-separated parameter; falcosidekick-ui's front end sends "null" for
// an unset one.
func list(v string) []string {
	v = strings.TrimSpace(v)
	if v == "" || v == "null" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var sinceRe = regexp.MustCompile(`^([0-9]+)\s*([a-zA-Z]*)$`)

// parseSince reads falcosidekick-ui's since: a number with a unit (30s, 15m, 24h, 7d, 2w,
// 1M, 1y, or their long names), plain seconds, or an RFC 3339 time. 0 or empty: no bound.
func parseSince(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "null" || v == "0" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	m := sinceRe.FindStringSubmatch(v)
	if m == nil {
		return time.Time{}, fmt.Errorf("since %q: expected a duration such as 30s, 15m, 24h, 7d or 2w, a number of seconds, or an RFC 3339 time", v)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > 100*365*24*3600 {
		return time.Time{}, fmt.Errorf("since %q: the number is too large", v)
	}
	var unit time.Duration
	switch m[2] {
	case "", "s", "second", "seconds":
		unit = time.Second
	case "m", "min", "minute", "minutes":
		unit = time.Minute
	case "h", "hour", "hours":
		unit = time.Hour
	case "d", "day", "days":
		unit = 24 * time.Hour
	case "w", "week", "weeks":
		unit = 7 * 24 * time.Hour
	case "M", "month", "months":
		unit = 30 * 24 * time.Hour
	case "y", "year", "years":
		unit = 365 * 24 * time.Hour
	default:
		return time.Time{}, fmt.Errorf("since %q: unknown unit %q (s, m, h, d, w, M, y)", v, m[2])
	}
	if n == 0 {
		return time.Time{}, nil
	}
	if time.Duration(n) > 100*365*24*time.Hour/unit {
		return time.Time{}, fmt.Errorf("since %q: the number is too large", v)
	}
	return now.Add(-time.Duration(n) * unit), nil
}

func positive(name, v string, def, max int) (int, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "null" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a number", name, v)
	}
	if n <= 0 {
		return def, nil
	}
	if n > max {
		return max, nil
	}
	return n, nil
}

func (h *Handler) parse(r *http.Request) (args, error) {
	p := r.URL.Query()
	var a args
	a.q = store.Query{Priorities: list(p.Get("priority")), Rules: list(p.Get("rule")), Sources: list(p.Get("source")),
		Hostnames: list(p.Get("hostname")), Tags: list(p.Get("tags")), Text: strings.TrimSpace(p.Get("filter"))}
	if a.q.Text == "null" {
		a.q.Text = ""
	}
	var err error
	if a.q.Since, err = parseSince(p.Get("since"), h.opts.Now()); err != nil {
		return a, err
	}
	if v := p.Get("until"); v != "" {
		if a.q.Until, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return a, fmt.Errorf("until %q: expected an RFC 3339 time", v)
		}
	}
	if v := p.Get("page"); strings.TrimSpace(v) != "" {
		if n, perr := strconv.Atoi(strings.TrimSpace(v)); perr == nil && n > maxPage {
			return a, fmt.Errorf("page %d: at most %d", n, maxPage)
		}
	}
	if a.page, err = positive("page", p.Get("page"), 1, maxPage); err != nil {
		return a, err
	}
	if a.limit, err = positive("limit", p.Get("limit"), 100, MaxLimit); err != nil {
		return a, err
	}
	return a, nil
}

// queryError answers 400 for a bad parameter, 500 for a store failure.
func (h *Handler) queryError(w http.ResponseWriter, err error) {
	var bad *badQuery
	if errors.As(err, &bad) {
		writeError(w, http.StatusBadRequest, bad.Error())
		return
	}
	h.opts.Log.Error("ui store query failed", "err", err)
	writeError(w, http.StatusInternalServerError, "the event store failed: "+err.Error())
}

type badQuery struct{ error }

// storeErr marks the store's validation errors (a bad priority, group-by) as client errors.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	if strings.HasPrefix(err.Error(), "priority ") || strings.HasPrefix(err.Error(), "cannot group by") ||
		strings.HasPrefix(err.Error(), "timeline needs") {
		return &badQuery{err}
	}
	return err
}

func (h *Handler) search(w http.ResponseWriter, r *http.Request) {
	a, err := h.parse(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := h.opts.Store.Search(a.q, (a.page-1)*a.limit, a.limit)
	if err != nil {
		h.queryError(w, storeErr(err))
		return
	}
	out := struct {
		Results []json.RawMessage `json:"results"`
		Stats   statistics        `json:"statistics"`
	}{Results: make([]json.RawMessage, 0, len(res.Hits))}
	for _, hit := range res.Hits {
		out.Results = append(out.Results, hit.JSON)
	}
	out.Stats = statistics{Returned: int64(len(res.Hits)), All: int64(res.All), Partial: res.Partial}
	writeJSON(w, r, http.StatusOK, out)
}

func (h *Handler) count(w http.ResponseWriter, r *http.Request) {
	a, err := h.parse(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	n, partial, err := h.opts.Store.Count(a.q)
	if err != nil {
		h.queryError(w, storeErr(err))
		return
	}
	writeJSON(w, r, http.StatusOK, struct {
		Stats statistics `json:"statistics"`
	}{statistics{All: int64(n), Partial: partial}})
}

func (h *Handler) countBy(w http.ResponseWriter, r *http.Request) {
	a, err := h.parse(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	counts, partial, err := h.opts.Store.CountBy(a.q, r.PathValue("groupby"))
	if err != nil {
		h.queryError(w, storeErr(err))
		return
	}
	var all int64
	for _, n := range counts {
		all += n
	}
	writeJSON(w, r, http.StatusOK, struct {
		Results map[string]int64 `json:"results"`
		Stats   statistics       `json:"statistics"`
	}{counts, statistics{All: all, Distincts: int64(len(counts)), Partial: partial}})
}

// timeline answers counts by priority per time bucket over since..until (until: now).
func (h *Handler) timeline(w http.ResponseWriter, r *http.Request) {
	a, err := h.parse(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	n, err := positive("buckets", r.URL.Query().Get("buckets"), 60, 500)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	from, to := a.q.Since, a.q.Until
	if to.IsZero() {
		to = h.opts.Now()
	}
	if from.IsZero() {
		if st := h.opts.Store.Stats(); st.Events > 0 && st.Oldest > 0 {
			from = time.UnixMilli(st.Oldest)
		} else {
			from = to.Add(-time.Hour)
		}
	}
	if !from.Before(to) {
		from = to.Add(-time.Minute)
	}
	buckets, partial, err := h.opts.Store.Timeline(a.q, from, to.Add(time.Millisecond), n)
	if err != nil {
		h.queryError(w, storeErr(err))
		return
	}
	type bucket struct {
		Start  time.Time        `json:"start"`
		Counts map[string]int64 `json:"counts"`
	}
	out := struct {
		Buckets []bucket   `json:"buckets"`
		Stats   statistics `json:"statistics"`
	}{Buckets: make([]bucket, len(buckets))}
	for i, b := range buckets {
		out.Buckets[i] = bucket{b.Start.UTC(), b.Counts}
		for _, c := range b.Counts {
			out.Stats.All += c
		}
	}
	out.Stats.Partial = partial
	writeJSON(w, r, http.StatusOK, out)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("uuid")
	if _, err := uuid.Parse(id); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a uuid", id))
		return
	}
	hit, ok, err := h.opts.Store.Get(id)
	if err != nil {
		h.queryError(w, err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no stored event has uuid %s (it may have expired)", id))
		return
	}
	outputs := hit.Outputs
	if outputs == nil {
		outputs = []string{}
	}
	writeJSON(w, r, http.StatusOK, struct {
		Event   json.RawMessage `json:"event"`
		Outputs []string        `json:"outputs"`
		Stored  time.Time       `json:"stored"`
	}{hit.JSON, outputs, hit.Stored.UTC()})
}

func (h *Handler) outputs(w http.ResponseWriter, r *http.Request) {
	outs := []delivery.OutputHealth{}
	if h.opts.Health != nil {
		outs = append(outs, h.opts.Health()...)
	}
	writeJSON(w, r, http.StatusOK, struct {
		Outputs []delivery.OutputHealth `json:"outputs"`
		Store   store.Stats             `json:"store"`
	}{outs, h.opts.Store.Stats()})
}

// add is falcosidekick-ui's POST /api/v1/: {"event": {...}, "outputs": [...]} from a
// falcosidekick's WEBUI_URL output. The event is stored as it is (it was enriched and
// delivered by that falcosidekick), not delivered again.
func (h *Handler) add(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Event   json.RawMessage `json:"event"`
		Outputs []string        `json:"outputs"`
	}
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid body: expected {\"event\": {...}, \"outputs\": [...]}: "+err.Error())
		return
	}
	if len(bytes.TrimSpace(body.Event)) == 0 || string(bytes.TrimSpace(body.Event)) == "null" {
		writeError(w, http.StatusBadRequest, `missing "event"`)
		return
	}
	ev, err := event.Decode(bytes.NewReader(body.Event))
	if err != nil {
		writeError(w, http.StatusBadRequest, "event: "+err.Error())
		return
	}
	if ev.UUID == "" {
		ev.UUID = uuid.NewString()
	}
	if !h.opts.Record(ev, body.Outputs) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the UI store's queue is full (ui.queuesize): retry later")
		return
	}
	writeJSON(w, r, http.StatusOK, struct{}{})
}

// stream sends each newly stored event as a Server-Sent Event ("event: event", data: its
// Falco JSON), with a comment every 15 seconds to keep proxies from closing the connection.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming is not supported by this listener")
		return
	}
	ch, cancel := h.opts.Store.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, ": saker event stream\n\n")
	fl.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	ctx := r.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	for {
		select {
		case b, ok := <-ch:
			if !ok {
				return
			}
			if _, err := fmt.Fprintf(w, "event: event\ndata: %s\n\n", b); err != nil {
				return
			}
			fl.Flush()
		case <-keep.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-ctx.Done():
			return
		case <-h.stop:
			return
		}
	}
}

// export writes the events matching the filters, newest first, as JSON lines (format=jsonl,
// the default) or CSV (format=csv), at most limit of them (default and cap MaxExport).
func (h *Handler) export(w http.ResponseWriter, r *http.Request) {
	a, err := h.parse(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := positive("limit", r.URL.Query().Get("limit"), MaxExport, MaxExport)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "jsonl"
	}
	if format != "jsonl" && format != "csv" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q: expected jsonl or csv", format))
		return
	}
	res, err := h.opts.Store.Search(a.q, 0, limit)
	if err != nil {
		h.queryError(w, storeErr(err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if format == "jsonl" {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Content-Disposition", `attachment; filename="saker-events.jsonl"`)
		for _, hit := range res.Hits {
			_, _ = w.Write(hit.JSON)
			_, _ = w.Write([]byte{'\n'})
		}
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="saker-events.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"time", "priority", "rule", "source", "hostname", "tags", "output", "uuid"})
	for _, hit := range res.Hits {
		var e struct {
			Time     string   `json:"time"`
			Priority string   `json:"priority"`
			Rule     string   `json:"rule"`
			Source   string   `json:"source"`
			Hostname string   `json:"hostname"`
			Tags     []string `json:"tags"`
			Output   string   `json:"output"`
			UUID     string   `json:"uuid"`
		}
		if err := json.Unmarshal(hit.JSON, &e); err != nil {
			continue
		}
		row := []string{e.Time, e.Priority, e.Rule, e.Source, e.Hostname, strings.Join(e.Tags, ","), e.Output, e.UUID}
		for i := range row {
			row[i] = csvSafe(row[i])
		}
		_ = cw.Write(row)
	}
	cw.Flush()
}

// csvSafe keeps a spreadsheet from reading event content as a formula: a cell starting with
// = + - @ or a control character gets a leading quote.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
