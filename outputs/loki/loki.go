// Package loki pushes events to Grafana Loki (or anything speaking its push API, such as
// VictoriaLogs) in batches: the engine hands SendBatch up to batch.maxevents events and
// they are grouped into one stream per label set, with falcosidekick's labels.
package loki

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// Timestamp choices for loki.timestamp.
const (
	TimestampAuto     = "auto"
	TimestampEvent    = "event"
	TimestampReceived = "received"
)

// autoWindow bounds how far from now an event's own time may be for TimestampAuto to keep it:
// Loki refuses entries older than reject_old_samples_max_age (one week by default) or more than
// creation_grace_period (10 minutes) ahead, and VictoriaLogs silently drops entries outside
// its retention; both would lose the alert.
const (
	autoMaxAge    = 24 * time.Hour
	autoMaxFuture = 5 * time.Minute
)

// Config is the loki.* section (falcosidekick's keys, plus gzip and timestamp).
type Config struct {
	HostPort      string            `koanf:"hostport" doc:"Loki base URL (http://host:3100); setting it enables the output"`
	Endpoint      string            `koanf:"endpoint" doc:"push path appended to hostport"`
	Tenant        string            `koanf:"tenant" doc:"X-Scope-OrgID header (multi-tenant Loki)"`
	User          string            `koanf:"user" doc:"basic auth user (Grafana Cloud), with apikey"`
	APIKey        string            `koanf:"apikey" secret:"true" doc:"basic auth password / API key, with user"`
	ExtraLabels   []string          `koanf:"extralabels" doc:"output fields added as stream labels besides rule, source, priority, hostname and tags (env: \"k8s.ns.name,proc.name\")"`
	Format        string            `koanf:"format" doc:"log line: text (the event's output) or json (the whole event)"`
	Gzip          bool              `koanf:"gzip" doc:"gzip the push request body"`
	Timestamp     string            `koanf:"timestamp" doc:"entry time: auto (the event's time unless more than 24h old or 5m ahead, then the time saker received it), event, or received"`
	CustomHeaders map[string]string `koanf:"customheaders" secret:"true" doc:"extra request headers (env: \"X-A:1,X-B:2\")"`
	CheckCert     bool              `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS     bool              `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config {
	return &Config{Endpoint: "/loki/api/v1/push", Format: "text", Timestamp: TimestampAuto, CheckCert: true}
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.HostPort == "" {
		return nil
	}
	if err := outputs.ValidateURL("loki.hostport", c.HostPort); err != nil {
		return err
	}
	if !strings.HasPrefix(c.Endpoint, "/") {
		return fmt.Errorf("loki.endpoint must start with /, got %q", c.Endpoint)
	}
	if f := strings.ToLower(c.Format); f != "text" && f != "json" {
		return fmt.Errorf("loki.format must be text or json, got %q", c.Format)
	}
	switch strings.ToLower(c.Timestamp) {
	case TimestampAuto, TimestampEvent, TimestampReceived:
	default:
		return fmt.Errorf("loki.timestamp must be auto, event or received, got %q", c.Timestamp)
	}
	if (c.User == "") != (c.APIKey == "") {
		return fmt.Errorf("loki.user and loki.apikey must be set together")
	}
	return outputs.CheckHeaders("loki.customheaders", c.CustomHeaders)
}

func init() {
	s := outputs.Define("loki", "loki", defaults,
		func(c *Config) bool { return c.HostPort != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "push events to Loki (streams by label set, batched)"
	s.Batch = delivery.BatchPolicy{MaxEvents: 100, MaxBytes: 1 << 20, FlushInterval: time.Second}
	outputs.Register(s)
}

// Loki is the output.
type Loki struct {
	url     string
	client  *httpout.Client
	headers map[string]string
	extra   []string
	json    bool
	gzip    bool
	stamp   string
	now     func() time.Time
}

// New builds the output.
func New(c *Config, env outputs.Env) (*Loki, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	client, err := env.HTTPClient(c.CheckCert, c.MutualTLS, c.CustomHeaders)
	if err != nil {
		return nil, fmt.Errorf("loki: %w", err)
	}
	l := &Loki{url: strings.TrimRight(c.HostPort, "/") + c.Endpoint, client: client, headers: map[string]string{},
		extra: c.ExtraLabels, json: strings.EqualFold(c.Format, "json"), gzip: c.Gzip,
		stamp: strings.ToLower(c.Timestamp), now: time.Now}
	if c.Tenant != "" {
		l.headers["X-Scope-OrgID"] = c.Tenant
	}
	if c.User != "" && c.APIKey != "" {
		l.headers["Authorization"] = httpout.BasicAuth(c.User, c.APIKey)
	}
	if l.gzip {
		l.headers["Content-Encoding"] = "gzip"
	}
	return l, nil
}

// Name implements delivery.Output.
func (l *Loki) Name() string { return "loki" }

// Push is the body of POST /loki/api/v1/push.
type Push struct {
	Streams []Stream `json:"streams"`
}

// Stream is one label set and its entries, each [unix-nanoseconds, line].
type Stream struct {
	Stream map[string]string `json:"stream"`
	Values [][2]string       `json:"values"`
}

// Labels returns the stream labels of ev: rule, source, priority, hostname, sorted tags, and
// the output fields named in loki.extralabels (any type, rendered), names sanitised to
// [a-zA-Z0-9_]. Empty values are left out (Loki drops them anyway).
func (l *Loki) Labels(ev *event.Event) map[string]string {
	s := make(map[string]string, 5+len(l.extra))
	for _, name := range l.extra {
		v, ok := ev.OutputFields[name]
		if !ok {
			continue
		}
		if value, ok := event.LabelText(v); ok && value != "" {
			if label := labelName(name); label != "" {
				s[label] = value
			}
		}
	}
	s["rule"] = ev.Rule
	s["source"] = ev.Source
	s["priority"] = ev.Priority.String()
	if ev.Hostname != "" {
		s["hostname"] = ev.Hostname
	}
	if len(ev.Tags) > 0 {
		tags := append([]string(nil), ev.Tags...)
		sort.Strings(tags)
		s["tags"] = strings.Join(tags, ",")
	}
	for k, v := range s {
		if v == "" {
			delete(s, k)
		}
	}
	return s
}

// entryTime is the timestamp of ev's entry according to loki.timestamp.
func (l *Loki) entryTime(ev *event.Event) time.Time {
	received := ev.Received
	if received.IsZero() {
		received = l.now()
	}
	switch l.stamp {
	case TimestampEvent:
		return ev.Time
	case TimestampReceived:
		return received
	}
	if ev.Time.IsZero() || ev.Time.Before(received.Add(-autoMaxAge)) || ev.Time.After(received.Add(autoMaxFuture)) {
		return received
	}
	return ev.Time
}

// Payload groups evs into streams, one per distinct label set in order of first appearance,
// entries in time order within each stream.
func (l *Loki) Payload(evs []*event.Event) Push {
	var push Push
	index := map[string]int{}
	type entry struct {
		t    time.Time
		line string
	}
	var entries [][]entry
	for _, ev := range evs {
		labels := l.Labels(ev)
		key := labelKey(labels)
		i, ok := index[key]
		if !ok {
			i = len(push.Streams)
			index[key] = i
			push.Streams = append(push.Streams, Stream{Stream: labels})
			entries = append(entries, nil)
		}
		line := ev.Output
		if l.json {
			line = string(ev.JSON())
		}
		entries[i] = append(entries[i], entry{l.entryTime(ev), line})
	}
	for i := range push.Streams {
		es := entries[i]
		sort.SliceStable(es, func(a, b int) bool { return es[a].t.Before(es[b].t) })
		push.Streams[i].Values = make([][2]string, len(es))
		for j, e := range es {
			push.Streams[i].Values[j] = [2]string{strconv.FormatInt(e.t.UnixNano(), 10), e.line}
		}
	}
	return push
}

// Body encodes the push request, gzipped when loki.gzip is set.
func (l *Loki) Body(evs []*event.Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l.Payload(evs)); err != nil {
		return nil, fmt.Errorf("loki: encode push: %w", err)
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if !l.gzip {
		return body, nil
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	if _, err := zw.Write(body); err != nil {
		return nil, fmt.Errorf("loki: gzip push: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("loki: gzip push: %w", err)
	}
	return zb.Bytes(), nil
}

// SendBatch pushes the events in one request. Loki accepts or refuses a push as a whole, so
// the outcome applies to every event of the batch.
func (l *Loki) SendBatch(ctx context.Context, evs []*event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	body, err := l.Body(evs)
	if err != nil {
		return delivery.Permanent(err)
	}
	if err := l.client.Send(ctx, httpout.Request{URL: l.url, ContentType: "application/json", Body: body, Headers: l.headers}); err != nil {
		return fmt.Errorf("loki push of %d events: %w", len(evs), err)
	}
	return nil
}

func labelKey(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(labels[k])
		b.WriteByte(0)
	}
	return b.String()
}

// labelName maps a field name onto a Loki label name ([a-zA-Z_][a-zA-Z0-9_]*): other
// characters become _ ("ka.user.name" -> "ka_user_name", as falcosidekick sends), a leading
// digit gets a _ prefix.
func labelName(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		s = "_" + s
	}
	return s
}
