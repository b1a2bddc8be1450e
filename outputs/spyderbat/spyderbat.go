// Package spyderbat sends each event to Spyderbat's API as falcosidekick's Spyderbat output
// does: the organisation gets a source named falcosidekick_<orguid> (created when it does
// not exist yet), and each event is posted to that source's sb-agent data endpoint as one
// gzipped NDJSON record of schema falco_alert::1.0.0.
//
// falcosidekick created the source when it started and gave up on the output when the API
// did not answer; saker creates it before the first event is sent, so an API that is down
// at start only delays delivery.
package spyderbat

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// Config is the spyderbat.* section.
type Config struct {
	OrgUID            string `koanf:"orguid" doc:"organisation to send events to; setting it enables the output"`
	APIKey            string `koanf:"apikey" secret:"true" doc:"API key with access to the organisation"`
	APIURL            string `koanf:"apiurl" doc:"Spyderbat API URL"`
	Source            string `koanf:"source" doc:"name of the source the events appear under (at most 32 characters)"`
	SourceDescription string `koanf:"sourcedescription" doc:"description of the source (at most 256 characters)"`
}

func defaults() *Config {
	return &Config{APIURL: "https://api.spyderbat.com", Source: "falcosidekick"}
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.OrgUID == "" {
		return nil
	}
	if c.APIKey == "" {
		return errors.New("spyderbat.apikey must be set with spyderbat.orguid")
	}
	if err := outputs.ValidateURL("spyderbat.apiurl", c.APIURL); err != nil {
		return err
	}
	if c.Source == "" || len(c.Source) > 32 {
		return fmt.Errorf("spyderbat.source must be 1 to 32 characters, got %d", len(c.Source))
	}
	if len(c.SourceDescription) > 256 {
		return fmt.Errorf("spyderbat.sourcedescription must be at most 256 characters, got %d", len(c.SourceDescription))
	}
	return nil
}

func init() {
	s := outputs.Define("spyderbat", "spyderbat", defaults,
		func(c *Config) bool { return c.OrgUID != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "send events to Spyderbat as falco_alert records of a source of the organisation"
	outputs.Register(s)
}

// Output sends the events.
type Output struct {
	cfg                 *Config
	client              *httpout.Client
	sourceUID           string
	sourcesURL, dataURL string

	// gate lets one Send at a time check or create the source; sourceReady is set once
	// it exists.
	gate        chan struct{}
	sourceReady atomic.Bool
}

// New builds the output.
func New(c *Config, env outputs.Env) (*Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	client, err := env.HTTPClient(true, false, map[string]string{"Authorization": "Bearer " + c.APIKey})
	if err != nil {
		return nil, fmt.Errorf("spyderbat: %w", err)
	}
	o := &Output{cfg: c, client: client, sourceUID: "falcosidekick_" + c.OrgUID, gate: make(chan struct{}, 1)}
	org := "api/v1/org/" + url.PathEscape(c.OrgUID) + "/source/"
	if o.sourcesURL, err = url.JoinPath(c.APIURL, org); err != nil {
		return nil, fmt.Errorf("spyderbat.apiurl: %w", err)
	}
	if o.dataURL, err = url.JoinPath(c.APIURL, org, url.PathEscape(o.sourceUID), "data/sb-agent"); err != nil {
		return nil, fmt.Errorf("spyderbat.apiurl: %w", err)
	}
	return o, nil
}

// Name implements delivery.Output.
func (o *Output) Name() string { return "spyderbat" }

// Send makes sure the source exists, then posts the event.
func (o *Output) Send(ctx context.Context, ev *event.Event) error {
	if err := o.ensureSource(ctx); err != nil {
		return err
	}
	body, err := encode(newRecord(ev, time.Now()))
	if err != nil {
		return delivery.Permanent(fmt.Errorf("spyderbat: encode: %w", err))
	}
	err = o.client.Send(ctx, httpout.Request{URL: o.dataURL, ContentType: "application/ndjson", Body: body,
		Headers: map[string]string{"Content-Encoding": "gzip"}})
	if err != nil {
		return fmt.Errorf("spyderbat: %w", err)
	}
	return nil
}

// source is the body that creates the source.
type source struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	UID         string `json:"uid"`
}

// ensureSource creates the organisation's falcosidekick source unless it exists, once; a
// failure is retried with the next event.
func (o *Output) ensureSource(ctx context.Context) error {
	if o.sourceReady.Load() {
		return nil
	}
	select {
	case o.gate <- struct{}{}:
		defer func() { <-o.gate }()
	case <-ctx.Done():
		return fmt.Errorf("spyderbat: waiting for the source to be created: %w", ctx.Err())
	}
	if o.sourceReady.Load() {
		return nil
	}
	found, err := o.hasSource(ctx)
	if err != nil {
		return err
	}
	if !found {
		body, _ := json.Marshal(source{Name: o.cfg.Source, Description: o.cfg.SourceDescription, UID: o.sourceUID})
		if err := o.client.Send(ctx, httpout.Request{URL: o.sourcesURL, ContentType: "application/json", Body: body}); err != nil {
			// Another instance may have created it meanwhile, as falcosidekick checks.
			if again, err2 := o.hasSource(ctx); err2 != nil || !again {
				return fmt.Errorf("spyderbat: create source %s: %w", o.sourceUID, err)
			}
		}
	}
	o.sourceReady.Store(true)
	return nil
}

func (o *Output) hasSource(ctx context.Context) (bool, error) {
	resp, err := o.client.Do(ctx, httpout.Request{Method: http.MethodGet, URL: o.sourcesURL})
	if err != nil {
		return false, fmt.Errorf("spyderbat: list sources: %w", err)
	}
	var sources []struct {
		UID string `json:"uid"`
	}
	if err := json.Unmarshal(resp.Body, &sources); err != nil {
		return false, fmt.Errorf("spyderbat: list sources: the answer is not a list of sources: %w", err)
	}
	for _, s := range sources {
		if s.UID == o.sourceUID {
			return true, nil
		}
	}
	return false, nil
}

// record is a falco_alert::1.0.0 record.
type record struct {
	Schema        string   `json:"schema"`
	ID            string   `json:"id"`
	MonotonicTime int64    `json:"monotonic_time"`
	OrcTime       float64  `json:"orc_time"`
	Time          float64  `json:"time"`
	PID           int32    `json:"pid"`
	Level         string   `json:"level"`
	Message       []string `json:"msg"`
	Args          string   `json:"args"`
	Container     string   `json:"container"`
}

// levels maps Falco priorities onto Spyderbat's levels.
var levels = map[event.Priority]string{
	event.Emergency: "critical", event.Alert: "high", event.Critical: "critical", event.Error: "high",
	event.Warning: "medium", event.Notice: "low", event.Informational: "info", event.Debug: "info",
}

// started anchors monotonic_time: nanoseconds on saker's monotonic clock.
var started = time.Now()

// newRecord maps an event as falcosidekick does: the time from evt.time (the event's time
// when the field is absent or formatted), the process from proc.pid, proc.cmdline and
// container.id, the message the output without its first two words (Falco's time and
// priority). The id is the event's UUID, so a retried record can be recognised.
func newRecord(ev *event.Event, now time.Time) record {
	id := ev.UUID
	if id == "" {
		id = uuid.NewString()
	}
	t := float64(ev.Time.UnixNano()) / 1e9
	if ns, ok := integer(ev.OutputFields["evt.time"]); ok {
		t = float64(ns) / 1e9
	}
	pid, _ := integer(ev.OutputFields["proc.pid"])
	msg := []string{}
	if words := strings.Split(ev.Output, " "); len(words) > 2 {
		msg = words[2:]
	}
	text := func(k string) string {
		if v, ok := ev.OutputFields[k]; ok && v != nil {
			return event.FieldText(v)
		}
		return ""
	}
	return record{Schema: "falco_alert::1.0.0", ID: id, MonotonicTime: now.Sub(started).Nanoseconds(),
		OrcTime: float64(now.UnixNano()) / 1e9, Time: t, PID: int32(pid), Level: levels[ev.Priority], //nolint:gosec // pids fit
		Message: msg, Args: text("proc.cmdline"), Container: text("container.id")}
}

// integer reads a whole number field (a JSON number, or a string of digits).
func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	case float64:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// encode gzips the record as one NDJSON line.
func encode(r record) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(r); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
