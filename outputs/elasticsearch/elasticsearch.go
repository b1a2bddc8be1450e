// Package elasticsearch indexes events into Elasticsearch (or anything speaking its _bulk
// API, such as VictoriaLogs or OpenSearch) in batches through the official go-elasticsearch
// client. Each document is the Falco event JSON plus @timestamp, as falcosidekick sends it;
// the daily/monthly/annual index comes from the event's own time.
package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elastic/elastic-transport-go/v8/elastictransport"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// Config is the elasticsearch.* section (falcosidekick's keys).
type Config struct {
	HostPort            string            `koanf:"hostport" doc:"Elasticsearch URL, optionally with a path prefix (http://host:9200, http://vlogs:9428/insert/elasticsearch); setting it enables the output"`
	Index               string            `koanf:"index" doc:"index name, before the date suffix"`
	Type                string            `koanf:"type" doc:"ignored: mapping types are gone since Elasticsearch 7 (the _bulk API has none); accepted for falcosidekick files"`
	Suffix              string            `koanf:"suffix" doc:"index date suffix from the event's time: daily (falco-2006.01.02), monthly, annually or none"`
	Pipeline            string            `koanf:"pipeline" doc:"ingest pipeline applied to the documents"`
	Username            string            `koanf:"username" doc:"basic auth user"`
	Password            string            `koanf:"password" secret:"true" doc:"basic auth password"`
	APIKey              string            `koanf:"apikey" secret:"true" doc:"API key (base64 id:key), sent as Authorization: ApiKey; overrides username/password"`
	FlattenFields       bool              `koanf:"flattenfields" doc:"replace . by _ in output field names to avoid mapping conflicts (proc.name vs proc)"`
	CreateIndexTemplate bool              `koanf:"createindextemplate" doc:"create an index template for the index pattern at start (forces flattenfields)"`
	NumberOfShards      int               `koanf:"numberofshards" doc:"shards set by the index template"`
	NumberOfReplicas    int               `koanf:"numberofreplicas" doc:"replicas set by the index template"`
	EnableCompression   bool              `koanf:"enablecompression" doc:"gzip the _bulk request bodies"`
	CustomHeaders       map[string]string `koanf:"customheaders" secret:"true" doc:"extra request headers (env: \"X-A:1,X-B:2\")"`
	CheckCert           bool              `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS           bool              `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config {
	return &Config{Index: "falco", Type: "_doc", Suffix: "daily", NumberOfShards: 3, NumberOfReplicas: 3, CheckCert: true}
}

// settings are the parsed, checked values of a Config.
type settings struct {
	base     *url.URL // hostport without credentials
	username string
	password string
}

// Validate names the key at fault. It does not change c.
func (c *Config) Validate() error {
	_, err := c.parse()
	return err
}

// parse checks every key and returns the values New needs: credentials given in the URL
// (http://user:pass@host:9200) move to username and password unless those are set.
func (c *Config) parse() (settings, error) {
	s := settings{username: c.Username, password: c.Password}
	if c.HostPort == "" {
		return s, nil
	}
	if err := outputs.ValidateURL("elasticsearch.hostport", c.HostPort); err != nil {
		return s, err
	}
	if err := c.check(); err != nil {
		return s, err
	}
	base, err := url.Parse(strings.TrimRight(c.HostPort, "/"))
	if err != nil {
		return s, fmt.Errorf("elasticsearch.hostport is not a valid URL (value not shown: it may hold credentials)")
	}
	if base.User != nil {
		if s.username == "" {
			s.username = base.User.Username()
			s.password, _ = base.User.Password() // a URL without a password has an empty one
		}
		base.User = nil
	}
	s.base = base
	return s, outputs.CheckHeaders("elasticsearch.customheaders", c.CustomHeaders)
}

// check validates the keys New uses as they are.
func (c *Config) check() error {
	switch c.Suffix {
	case "daily", "monthly", "annually", "none":
	default:
		return fmt.Errorf("elasticsearch.suffix must be daily, monthly, annually or none, got %q", c.Suffix)
	}
	if c.Index == "" || c.Index != strings.ToLower(c.Index) || strings.ContainsAny(c.Index, `\/*?"<>| ,#:`) {
		return fmt.Errorf("elasticsearch.index must be a lower-case index name without \\/*?\"<>| ,#:, got %q", c.Index)
	}
	if c.CreateIndexTemplate && (c.NumberOfShards < 1 || c.NumberOfReplicas < 0) {
		return fmt.Errorf("elasticsearch.numberofshards must be at least 1 and numberofreplicas at least 0, got %d and %d", c.NumberOfShards, c.NumberOfReplicas)
	}
	return nil
}

func init() {
	s := outputs.Define("elasticsearch", "elasticsearch", defaults,
		func(c *Config) bool { return c.HostPort != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "index events into Elasticsearch with the _bulk API"
	s.Batch = delivery.BatchPolicy{MaxEvents: 100, MaxBytes: 1 << 20, FlushInterval: time.Second}
	s.Aliases = batchingAliases
	outputs.Register(s)
}

// batchingAliases map falcosidekick's elasticsearch.batching.* keys onto the delivery
// engine's batch keys, so a falcosidekick file keeps its batching settings.
var batchingAliases = []outputs.Alias{
	{Path: "elasticsearch.batching.enabled", Type: "bool",
		Doc: "false sends every event in its own request (`elasticsearch.batch.maxevents: 1`); true keeps the batch keys",
		Expand: func(v string) (map[string]any, error) {
			on, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("invalid value %q: want true or false", v)
			}
			if on {
				return nil, nil
			}
			return map[string]any{"elasticsearch.batch.maxevents": 1}, nil
		}},
	{Path: "elasticsearch.batching.batchsize", Type: "int",
		Doc: "bytes per batch at most: `elasticsearch.batch.maxbytes`",
		Expand: func(v string) (map[string]any, error) {
			return map[string]any{"elasticsearch.batch.maxbytes": strings.TrimSpace(v)}, nil
		}},
	{Path: "elasticsearch.batching.flushinterval", Type: "duration",
		Doc: "send a partial batch after this long: `elasticsearch.batch.flushinterval`",
		Expand: func(v string) (map[string]any, error) {
			return map[string]any{"elasticsearch.batch.flushinterval": strings.TrimSpace(v)}, nil
		}},
}

// Elasticsearch is the output.
type Elasticsearch struct {
	cfg     Config
	client  *esapi.API
	logURL  string // hostport without credentials, for errors
	flatten bool
	log     *slog.Logger

	templateMu   sync.Mutex
	templateDone bool
}

// New builds the output. It does not contact the server: the first batch does.
func New(c *Config, env outputs.Env) (*Elasticsearch, error) {
	s, err := c.parse()
	if err != nil {
		return nil, err
	}
	if s.base == nil {
		return nil, errors.New("elasticsearch.hostport is empty")
	}
	tr, err := httpout.NewTransport(httpout.Options{CheckCert: c.CheckCert, MutualTLS: c.MutualTLS, TLS: env.TLS,
		MaxConns: env.Policy.MaxConcurrentRequests})
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	header := http.Header{}
	for k, v := range c.CustomHeaders {
		header.Set(k, v)
	}
	// esapi over elastictransport, not the root go-elasticsearch package: the root package
	// links the whole typed API (thousands of packages) and insists on a genuine Elastic
	// product, which would shut out OpenSearch and VictoriaLogs.
	opts := []elastictransport.Option{
		elastictransport.WithUserAgent(httpout.UserAgent),
		elastictransport.WithURLs(s.base),
		elastictransport.WithHeader(header),
		elastictransport.WithTransport(tr),
		elastictransport.WithDisableRetry(), // the delivery engine retries, with backoff and dead-lettering
	}
	if s.username != "" || s.password != "" {
		opts = append(opts, elastictransport.WithBasicAuth(s.username, s.password))
	}
	if c.APIKey != "" {
		opts = append(opts, elastictransport.WithAPIKey(c.APIKey))
	}
	if c.EnableCompression {
		opts = append(opts, elastictransport.WithCompression())
	}
	tp, err := elastictransport.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: client for %s: %w", httpout.Redact(c.HostPort), err)
	}
	client := esapi.New(tp)
	return &Elasticsearch{cfg: *c, client: client, logURL: httpout.Redact(c.HostPort),
		flatten: c.FlattenFields || c.CreateIndexTemplate, log: env.Logger()}, nil
}

// Name implements delivery.Output.
func (e *Elasticsearch) Name() string { return "elasticsearch" }

// IndexFor is the index ev goes to: index plus the suffix from the event's own time (UTC),
// so an event lands in the index of the day it happened, whenever it is delivered.
func (e *Elasticsearch) IndexFor(ev *event.Event) string {
	t := ev.Time.UTC()
	switch e.cfg.Suffix {
	case "none":
		return e.cfg.Index
	case "monthly":
		return e.cfg.Index + "-" + t.Format("2006.01")
	case "annually":
		return e.cfg.Index + "-" + t.Format("2006")
	}
	return e.cfg.Index + "-" + t.Format("2006.01.02")
}

// Document is the indexed JSON of ev: the Falco event plus @timestamp (the event time), with
// output field names flattened when configured.
func (e *Elasticsearch) Document(ev *event.Event) []byte {
	src := ev
	if e.flatten {
		src = ev.Clone()
		src.OutputFields = make(map[string]any, len(ev.OutputFields))
		for k, v := range ev.OutputFields {
			src.OutputFields[strings.ReplaceAll(k, ".", "_")] = v
		}
	}
	body := src.JSON()
	ts, _ := ev.Time.MarshalJSON()
	doc := make([]byte, 0, len(body)+len(ts)+16)
	doc = append(doc, body[:len(body)-1]...) // without the closing brace
	doc = append(doc, `,"@timestamp":`...)
	doc = append(doc, ts...)
	return append(doc, '}')
}

// Body builds the _bulk NDJSON: one create action per event, _id = the event's UUID so a
// batch retried after a lost response does not index a document twice.
func (e *Elasticsearch) Body(evs []*event.Event) []byte {
	var buf bytes.Buffer
	for _, ev := range evs {
		action := map[string]map[string]string{"create": {"_index": e.IndexFor(ev)}}
		if ev.UUID != "" {
			action["create"]["_id"] = ev.UUID
		}
		a, _ := json.Marshal(action)
		buf.Write(a)
		buf.WriteByte('\n')
		buf.Write(e.Document(ev))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// bulkResponse is the part of the _bulk answer we read.
type bulkResponse struct {
	Errors bool                          `json:"errors"`
	Items  []map[string]bulkItemResponse `json:"items"`
}

type bulkItemResponse struct {
	Status int `json:"status"`
	Error  *struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// SendBatch indexes the events with one _bulk request. A request-level failure applies to
// the whole batch (transient for network errors, 408, 429 and 5xx); documents Elasticsearch
// rejects are reported one by one in a *delivery.BatchError with its reason, permanent for a
// 4xx (a mapping conflict will not fix itself), transient for 429 and 5xx.
func (e *Elasticsearch) SendBatch(ctx context.Context, evs []*event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	if err := e.ensureTemplate(ctx); err != nil {
		return err
	}
	opts := []func(*esapi.BulkRequest){e.client.Bulk.WithContext(ctx)}
	if e.cfg.Pipeline != "" {
		opts = append(opts, e.client.Bulk.WithPipeline(e.cfg.Pipeline))
	}
	bulkURL := e.logURL + "/_bulk"
	res, err := e.client.Bulk(bytes.NewReader(e.Body(evs)), opts...)
	if err != nil {
		return fmt.Errorf("elasticsearch: POST %s: %w", bulkURL, scrub(err, e.cfg))
	}
	defer res.Body.Close()
	if res.IsError() {
		snippet, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("elasticsearch: %w", httpout.StatusError("POST", bulkURL, res.StatusCode, res.Header, snippet))
	}
	var br bulkResponse
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<20)).Decode(&br); err != nil {
		return fmt.Errorf("elasticsearch: POST %s: unreadable _bulk response: %w", bulkURL, err)
	}
	if !br.Errors {
		return nil
	}
	if len(br.Items) != len(evs) {
		return fmt.Errorf("elasticsearch: POST %s: _bulk answered %d items for %d documents", bulkURL, len(br.Items), len(evs))
	}
	failed := map[int]error{}
	for i, item := range br.Items {
		for op, r := range item {
			if r.Status >= 200 && r.Status < 300 || r.Status == http.StatusConflict && op == "create" {
				continue // 409 on create: this _id (the event's UUID) was indexed by an earlier try
			}
			reason := "unknown error"
			if r.Error != nil {
				reason = r.Error.Type + ": " + r.Error.Reason
			}
			ferr := fmt.Errorf("elasticsearch: document %s rejected by index %s: status %d: %s", evs[i].UUID, e.IndexFor(evs[i]), r.Status, reason)
			if r.Status != http.StatusTooManyRequests && r.Status != http.StatusRequestTimeout && r.Status < 500 {
				ferr = delivery.Permanent(ferr)
			}
			failed[i] = ferr
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &delivery.BatchError{Failed: failed}
}

// ensureTemplate creates the index template once when createindextemplate is set, never
// replacing an existing one (create=true). A refusal
// (4xx: no permission, a server without templates) is logged and indexing goes on: alerts
// matter more than mappings. A transient failure fails the batch, which is retried.
func (e *Elasticsearch) ensureTemplate(ctx context.Context) error {
	if !e.cfg.CreateIndexTemplate {
		return nil
	}
	e.templateMu.Lock()
	defer e.templateMu.Unlock()
	if e.templateDone {
		return nil
	}
	body, _ := json.Marshal(e.Template())
	res, err := e.client.Indices.PutIndexTemplate(e.cfg.Index, bytes.NewReader(body),
		e.client.Indices.PutIndexTemplate.WithContext(ctx), e.client.Indices.PutIndexTemplate.WithCreate(true))
	tplURL := e.logURL + "/_index_template/" + e.cfg.Index
	if err != nil {
		return fmt.Errorf("elasticsearch: PUT %s: %w", tplURL, scrub(err, e.cfg))
	}
	defer res.Body.Close()
	if res.IsError() {
		snippet, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		serr := httpout.StatusError("PUT", tplURL, res.StatusCode, res.Header, snippet)
		switch {
		case !delivery.IsPermanent(serr):
			return fmt.Errorf("elasticsearch: %w", serr)
		case bytes.Contains(snippet, []byte("already exists")):
			// create=true: a template someone tuned is kept, as falcosidekick keeps it
		default:
			e.log.Warn("elasticsearch index template refused; indexing without it", "err", serr)
		}
	}
	e.templateDone = true
	return nil
}

// Template is the composable index template for the output's indices: settings from
// numberofshards/numberofreplicas, dates and keywords for the event's fixed fields, string
// output fields as keywords.
func (e *Elasticsearch) Template() map[string]any {
	pattern := e.cfg.Index + "-*"
	if e.cfg.Suffix == "none" {
		pattern = e.cfg.Index
	}
	kw := map[string]any{"type": "keyword"}
	return map[string]any{
		"index_patterns": []string{pattern},
		"template": map[string]any{
			"settings": map[string]any{"number_of_shards": e.cfg.NumberOfShards, "number_of_replicas": e.cfg.NumberOfReplicas},
			"mappings": map[string]any{
				"properties": map[string]any{
					"@timestamp": map[string]any{"type": "date"}, "time": map[string]any{"type": "date"},
					"output": map[string]any{"type": "text"}, "priority": kw, "rule": kw, "source": kw,
					"hostname": kw, "tags": kw, "uuid": kw,
				},
				"dynamic_templates": []any{map[string]any{"output_fields": map[string]any{
					"path_match": "output_fields.*", "match_mapping_type": "string", "mapping": kw}}},
			},
		},
	}
}

// scrub removes configured secrets from an error text the SDK built.
func scrub(err error, c Config) error {
	msg := err.Error()
	for _, s := range []string{c.Password, c.APIKey} {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "REDACTED")
		}
	}
	if msg == err.Error() {
		return err
	}
	return fmt.Errorf("%s", msg)
}
