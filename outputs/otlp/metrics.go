package otlp

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/credentials"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/tlsclient"
)

// falcosidekick's metric.
const (
	MetricName        = "falcosecurity_falco_rules_matches_total"
	metricDescription = "Number of times rules match"
	meterName         = "falcosecurity.falco.otlpmetrics.meter"
)

// MetricsConfig is the otlp.metrics section.
type MetricsConfig struct {
	Config          `koanf:",squash"`
	ExtraAttributes []string `koanf:"extraattributes" doc:"output fields added as attributes (dots become _; a field the event lacks gives \"\"), besides source, priority, rule, hostname, tags and the customfields"`
}

func metricsDefaults() *MetricsConfig { return &MetricsConfig{Config: Config{CheckCert: true}} }

// attrName is what an attribute name must look like once dots became underscores
// (falcosidekick's rule, Prometheus' label syntax).
var attrName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// Validate names the key at fault.
func (c *MetricsConfig) Validate() error {
	if c.Endpoint == "" {
		return nil
	}
	for _, a := range c.ExtraAttributes {
		if !attrName.MatchString(strings.ReplaceAll(strings.TrimSpace(a), ".", "_")) {
			return fmt.Errorf("otlp.metrics.extraattributes: %q does not give a valid attribute name (letters, digits, _ and :, dots become _)", a)
		}
	}
	_, err := c.resolve(metricsSignal, getenv)
	return err
}

func init() {
	s := outputs.Define(metricsSignal.name, metricsSignal.section, metricsDefaults,
		func(c *MetricsConfig) bool { return c.Endpoint != "" },
		func(c *MetricsConfig, env outputs.Env) (delivery.Output, error) { return NewMetrics(c, env) })
	s.Doc = "count events in the OpenTelemetry counter " + MetricName + " and export it (OTLP over HTTP or gRPC)"
	s.Batch = defaultBatch
	// One export at a time: cumulative values must reach the receiver in order.
	s.Concurrency = 1
	s.Aliases = []outputs.Alias{timeoutAlias(metricsSignal.section)}
	outputs.Register(s)
}

// attrField is an attribute read from an output field.
type attrField struct{ name, field string }

// Metrics is the otlp.metrics output: a cumulative counter, exported after every batch.
type Metrics struct {
	set      settings
	exporter sdkmetric.Exporter
	provider *sdkmetric.MeterProvider
	reader   *sdkmetric.ManualReader
	counter  metric.Int64Counter
	custom   []attrField
	extra    []attrField

	mu sync.Mutex
	// counted and older hold the uuids of the events already added to the counter, so an
	// event retried (or redelivered) is not counted twice: the last maxCounted events at
	// least, in two generations so the oldest are forgotten first.
	counted, older map[string]struct{}
}

// maxCounted is how many counted events are remembered (about 60 bytes each).
const maxCounted = 100_000

// NewMetrics builds the exporter; it does not connect: the first export does.
func NewMetrics(c *MetricsConfig, env outputs.Env) (*Metrics, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s, err := c.resolve(metricsSignal, getenv)
	if err != nil {
		return nil, err
	}
	exp, err := newMetricExporter(s, c.CheckCert, env)
	if err != nil {
		return nil, fmt.Errorf("otlpmetrics: %w", err)
	}
	m := &Metrics{set: s, exporter: exp, reader: sdkmetric.NewManualReader(),
		counted: map[string]struct{}{}, older: map[string]struct{}{}}
	for _, f := range env.CustomFields {
		name := strings.ReplaceAll(f, ".", "_")
		if !attrName.MatchString(name) {
			env.Logger().Warn("customfields key is not a valid metric attribute name; left out of "+MetricName, "key", f)
			continue
		}
		m.custom = append(m.custom, attrField{name, f})
	}
	for _, f := range c.ExtraAttributes {
		f = strings.TrimSpace(f)
		m.extra = append(m.extra, attrField{strings.ReplaceAll(f, ".", "_"), f})
	}
	m.provider = sdkmetric.NewMeterProvider(sdkmetric.WithResource(newResource("0.1.0")), sdkmetric.WithReader(m.reader))
	m.counter, err = m.provider.Meter(meterName).Int64Counter(MetricName, metric.WithDescription(metricDescription))
	if err != nil {
		return nil, fmt.Errorf("otlpmetrics: %w", err)
	}
	return m, nil
}

func newMetricExporter(s settings, checkCert bool, env outputs.Env) (sdkmetric.Exporter, error) {
	ctx := context.Background()
	timeout := exportTimeout(s, env)
	if s.protocol == GRPC {
		opts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(s.host), otlpmetricgrpc.WithHeaders(s.headers),
			otlpmetricgrpc.WithTimeout(timeout), otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false})}
		if s.gzip {
			opts = append(opts, otlpmetricgrpc.WithCompressor("gzip"))
		}
		if s.insecure {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		} else {
			tlsCfg, err := tlsclient.Config("", checkCert, false, env.TLS)
			if err != nil {
				return nil, err
			}
			opts = append(opts, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		return otlpmetricgrpc.New(ctx, opts...)
	}
	client, err := newHTTPClient(checkCert, env)
	if err != nil {
		return nil, err
	}
	opts := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpoint(s.host), otlpmetrichttp.WithURLPath(s.path),
		otlpmetrichttp.WithHeaders(s.headers), otlpmetrichttp.WithTimeout(timeout), otlpmetrichttp.WithHTTPClient(client),
		otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false})}
	if s.gzip {
		opts = append(opts, otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression))
	}
	if s.insecure {
		opts = append(opts, otlpmetrichttp.WithInsecure())
	}
	return otlpmetrichttp.New(ctx, opts...)
}

// Name implements delivery.Output.
func (m *Metrics) Name() string { return metricsSignal.name }

// Send counts the event and exports the counter.
func (m *Metrics) Send(ctx context.Context, ev *event.Event) error {
	return m.SendBatch(ctx, []*event.Event{ev})
}

// SendBatch counts the events (each once, however often it is retried) and exports the
// counter's cumulative values. A failed export loses nothing: the next one carries the
// totals. An event counted whose delivery then ends in the dead-letter file stays counted.
func (m *Metrics) SendBatch(ctx context.Context, evs []*event.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range evs {
		if m.seen(ev) {
			continue
		}
		m.counter.Add(context.Background(), 1, metric.WithAttributes(m.Attributes(ev)...))
	}
	var rm metricdata.ResourceMetrics
	if err := m.reader.Collect(ctx, &rm); err != nil {
		return fmt.Errorf("otlpmetrics: collect: %w", err)
	}
	return export(ctx, metricsSignal, m.set, len(evs), func(ctx context.Context) error {
		return m.exporter.Export(ctx, &rm)
	})
}

// seen reports whether ev was counted already, and notes it.
func (m *Metrics) seen(ev *event.Event) bool {
	key := ev.UUID
	if key == "" {
		key = fmt.Sprintf("%p", ev)
	}
	_, now := m.counted[key]
	_, before := m.older[key]
	if now || before {
		return true
	}
	if len(m.counted) >= maxCounted/2 {
		m.older, m.counted = m.counted, make(map[string]struct{}, maxCounted/2)
	}
	m.counted[key] = struct{}{}
	return false
}

// Attributes are the event's counter attributes, as falcosidekick sets them: source,
// priority, rule, hostname ("unknown" when empty), tags, each customfields key (dots as _)
// and each extraattributes field (its text, "" when the event lacks it).
func (m *Metrics) Attributes(ev *event.Event) []attribute.KeyValue {
	host := ev.Hostname
	if host == "" {
		host = "unknown"
	}
	attrs := make([]attribute.KeyValue, 0, 5+len(m.custom)+len(m.extra))
	attrs = append(attrs, attribute.String("source", ev.Source), attribute.String("priority", ev.Priority.String()),
		attribute.String("rule", ev.Rule), attribute.String("hostname", host), stringsAttr("tags", ev.Tags))
	for _, group := range [][]attrField{m.custom, m.extra} {
		for _, a := range group {
			v, _ := event.LabelText(ev.OutputFields[a.field])
			attrs = append(attrs, attribute.String(a.name, v))
		}
	}
	return attrs
}

// Close shuts the exporter down (its connections).
func (m *Metrics) Close() error {
	return shutdown(m.provider.Shutdown, m.exporter.Shutdown)
}
