// Package quickwit ingests each event's Falco JSON into a Quickwit index, creating the index
// with a mapping for Falco events first when asked (autocreateindex), as falcosidekick does.
package quickwit

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
)

// Config is the quickwit.* section.
type Config struct {
	HostPort        string            `koanf:"hostport" doc:"Quickwit address, http(s)://host:port; setting it enables the output"`
	APIEndpoint     string            `koanf:"apiendpoint" doc:"path of the REST API under hostport"`
	Index           string            `koanf:"index" doc:"index the events are ingested into"`
	Version         string            `koanf:"version" doc:"index configuration version written when the index is created"`
	AutoCreateIndex bool              `koanf:"autocreateindex" doc:"create the index with a mapping for Falco events when it does not exist"`
	CustomHeaders   map[string]string `koanf:"customheaders" secret:"true" doc:"extra request headers, e.g. for authentication (env: \"X-A:1,X-B:2\")"`
	CheckCert       bool              `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS       bool              `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config {
	return &Config{APIEndpoint: "/api/v1", Index: "falco", Version: "0.7", CheckCert: true}
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.HostPort == "" {
		return nil
	}
	if err := outputs.ValidateURL("quickwit.hostport", c.HostPort); err != nil {
		return err
	}
	if c.Index == "" || strings.ContainsAny(c.Index, "/?# ") {
		return fmt.Errorf("quickwit.index must be an index id, got %q", c.Index)
	}
	return outputs.CheckHeaders("quickwit.customheaders", c.CustomHeaders)
}

func init() {
	s := outputs.Define("quickwit", "quickwit", defaults,
		func(c *Config) bool { return c.HostPort != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "ingest events into a Quickwit index"
	outputs.Register(s)
}

// Quickwit is the output.
type Quickwit struct {
	cfg         Config
	api, ingest string
	client      *httpout.Client

	mu      sync.Mutex
	created bool // the index exists (or autocreateindex is off)
}

// New builds the output.
func New(c *Config, env outputs.Env) (*Quickwit, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	client, err := env.HTTPClient(c.CheckCert, c.MutualTLS, c.CustomHeaders)
	if err != nil {
		return nil, fmt.Errorf("quickwit: %w", err)
	}
	api := strings.TrimSuffix(c.HostPort, "/") + "/" + strings.Trim(c.APIEndpoint, "/")
	return &Quickwit{cfg: *c, api: api, ingest: api + "/" + c.Index + "/ingest", client: client, created: !c.AutoCreateIndex}, nil
}

// Name implements delivery.Output.
func (q *Quickwit) Name() string { return "quickwit" }

// Send ingests the event's Falco JSON (Quickwit answers 200 with the number of documents
// ingested), creating the index first when autocreateindex is on and it does not exist yet.
func (q *Quickwit) Send(ctx context.Context, ev *event.Event) error {
	if err := q.ensureIndex(ctx); err != nil {
		return fmt.Errorf("quickwit: create index %s: %w", q.cfg.Index, err)
	}
	if err := q.client.Send(ctx, httpout.Request{URL: q.ingest, ContentType: "application/json; charset=utf-8", Body: ev.JSON()}); err != nil {
		return fmt.Errorf("quickwit: %w", err)
	}
	return nil
}

// ensureIndex creates the index once, when autocreateindex is on and describing it finds
// nothing. A failure is retried with the event, like a failed ingest.
func (q *Quickwit) ensureIndex(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.created {
		return nil
	}
	_, err := q.client.Do(ctx, httpout.Request{Method: http.MethodGet, URL: q.api + "/indexes/" + q.cfg.Index + "/describe"})
	if err == nil {
		q.created = true
		return nil
	}
	if !delivery.IsPermanent(err) { // Quickwit unreachable or failing: try again later
		return err
	}
	body, err := chat.EncodeJSON(q.indexConfig())
	if err != nil {
		return delivery.Permanent(err)
	}
	_, err = q.client.Do(ctx, httpout.Request{URL: q.api + "/indexes", ContentType: "application/json", Body: body})
	if err != nil && !strings.Contains(err.Error(), "already exists") { // created meanwhile by another replica
		return err
	}
	q.created = true
	return nil
}

// indexConfig is the index falcosidekick creates: dynamic mapping, the event time as the
// timestamp field, the event's own fields typed and fast, searched by default over the rule,
// source, output, priority, hostname and tags.
func (q *Quickwit) indexConfig() map[string]any {
	field := func(name, typ string, fast bool) map[string]any {
		return map[string]any{"name": name, "type": typ, "fast": fast}
	}
	return map[string]any{
		"version":  q.cfg.Version,
		"index_id": q.cfg.Index,
		"doc_mapping": map[string]any{
			"mode": "dynamic", "store_source": true, "timestamp_field": "time",
			"dynamic_mapping": map[string]any{"description": "Falco", "fast": true, "expand_dots": true, "indexed": true,
				"record": "basic", "stored": true, "tokenizer": "raw"},
			"field_mappings": []map[string]any{
				field("time", "datetime", true), field("uuid", "text", true), field("hostname", "text", true),
				field("priority", "text", true), field("source", "text", true), field("output", "text", false),
				field("rule", "text", true), field("tags", "array<text>", true), field("output_fields", "json", true),
			},
		},
		"search_settings": map[string]any{"default_search_fields": []string{"rule", "source", "output", "priority", "hostname", "tags"}},
	}
}
