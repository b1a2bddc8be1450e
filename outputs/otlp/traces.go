package otlp

import (
	"context"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/tlsclient"
)

// TracesConfig is the otlp.traces section.
type TracesConfig struct {
	Config `koanf:",squash"`
	// Duration is the span's length: Falco events have no end time.
	Duration int `koanf:"duration" doc:"length of each span in milliseconds (Falco events have no end time)"`
}

func tracesDefaults() *TracesConfig {
	return &TracesConfig{Config: Config{CheckCert: true}, Duration: 1000}
}

// Validate names the key at fault.
func (c *TracesConfig) Validate() error {
	if c.Endpoint == "" {
		return nil
	}
	if c.Duration < 0 {
		return fmt.Errorf("otlp.traces.duration must be >= 0 milliseconds, got %d", c.Duration)
	}
	_, err := c.resolve(tracesSignal, getenv)
	return err
}

func init() {
	s := outputs.Define(tracesSignal.name, tracesSignal.section, tracesDefaults,
		func(c *TracesConfig) bool { return c.Endpoint != "" },
		func(c *TracesConfig, env outputs.Env) (delivery.Output, error) { return NewTraces(c, env) })
	s.Doc = "export each event as an OpenTelemetry span (OTLP over HTTP or gRPC)"
	s.Batch = defaultBatch
	s.Aliases = []outputs.Alias{timeoutAlias(tracesSignal.section), syncedAlias}
	outputs.Register(s)
}

// defaultBatch sends up to 100 events in one export, at most a second after the first.
var defaultBatch = delivery.BatchPolicy{MaxEvents: 100, MaxBytes: 4 << 20, FlushInterval: time.Second}

// syncedAlias maps falcosidekick's otlp.traces.synced (export each span at once instead of
// through the SDK's batcher) onto the delivery engine's batching.
var syncedAlias = outputs.Alias{Path: "otlp.traces.synced", Type: "bool",
	Doc: "true exports every span on its own (`otlp.traces.batch.maxevents: 1`); false keeps the batch keys",
	Expand: func(v string) (map[string]any, error) {
		on, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("invalid value %q: want true or false", v)
		}
		if !on {
			return nil, nil
		}
		return map[string]any{"otlp.traces.batch.maxevents": 1}, nil
	}}

// Traces is the otlp.traces output.
type Traces struct {
	set      settings
	duration time.Duration
	exporter sdktrace.SpanExporter
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
}

// NewTraces builds the exporter; it does not connect: the first export does.
func NewTraces(c *TracesConfig, env outputs.Env) (*Traces, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s, err := c.resolve(tracesSignal, getenv)
	if err != nil {
		return nil, err
	}
	exp, err := newSpanExporter(s, c.CheckCert, env)
	if err != nil {
		return nil, fmt.Errorf("otlptraces: %w", err)
	}
	// The provider only builds spans: spanSink hands each one to the Send that started it,
	// which exports it itself.
	p := sdktrace.NewTracerProvider(sdktrace.WithResource(newResource("v0.1.0")),
		sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(spanSink{}),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeValueLengthLimit: -1, AttributeCountLimit: -1,
			EventCountLimit: -1, LinkCountLimit: -1, AttributePerEventCountLimit: -1, AttributePerLinkCountLimit: -1}))
	return &Traces{set: s, duration: time.Duration(c.Duration) * time.Millisecond, exporter: exp,
		provider: p, tracer: p.Tracer("falco-event")}, nil
}

func newSpanExporter(s settings, checkCert bool, env outputs.Env) (sdktrace.SpanExporter, error) {
	ctx := context.Background()
	timeout := exportTimeout(s, env)
	if s.protocol == GRPC {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(s.host), otlptracegrpc.WithHeaders(s.headers),
			otlptracegrpc.WithTimeout(timeout), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false})}
		if s.gzip {
			opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
		}
		if s.insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		} else {
			tlsCfg, err := tlsclient.Config("", checkCert, false, env.TLS)
			if err != nil {
				return nil, err
			}
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	client, err := newHTTPClient(checkCert, env)
	if err != nil {
		return nil, err
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(s.host), otlptracehttp.WithURLPath(s.path),
		otlptracehttp.WithHeaders(s.headers), otlptracehttp.WithTimeout(timeout), otlptracehttp.WithHTTPClient(client),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false})}
	if s.gzip {
		opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	}
	if s.insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	return otlptracehttp.New(ctx, opts...)
}

// Name implements delivery.Output.
func (t *Traces) Name() string { return tracesSignal.name }

// Send exports the event's span.
func (t *Traces) Send(ctx context.Context, ev *event.Event) error {
	return t.SendBatch(ctx, []*event.Event{ev})
}

// SendBatch exports the events' spans in one request.
func (t *Traces) SendBatch(ctx context.Context, evs []*event.Event) error {
	spans := make([]sdktrace.ReadOnlySpan, 0, len(evs))
	for _, ev := range evs {
		spans = append(spans, t.Span(ev))
	}
	return export(ctx, tracesSignal, t.set, len(evs), func(ctx context.Context) error {
		return t.exporter.ExportSpans(ctx, spans)
	})
}

// Span builds ev's span as falcosidekick does: named after the rule, kind server, from the
// event's time for the configured duration, with uuid, source, priority, rule, hostname,
// tags and every output field (as text) as attributes and the output line as an event. Its
// trace id hashes the pod (k8s.ns.name:k8s.pod.name), else the container id, else the
// host, so one workload's alerts share a trace.
func (t *Traces) Span(ev *event.Event) sdktrace.ReadOnlySpan {
	var sink []sdktrace.ReadWriteSpan
	ctx := context.WithValue(context.Background(), sinkKey{}, &sink)
	ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{}.WithTraceID(TraceID(ev)))
	_, span := t.tracer.Start(ctx, ev.Rule, trace.WithTimestamp(ev.Time), trace.WithSpanKind(trace.SpanKindServer))
	attrs := make([]attribute.KeyValue, 0, 6+len(ev.OutputFields))
	attrs = append(attrs, attribute.String("uuid", ev.UUID), attribute.String("source", ev.Source),
		attribute.String("priority", ev.Priority.String()), attribute.String("rule", ev.Rule),
		attribute.String("hostname", ev.Hostname), stringsAttr("tags", ev.Tags))
	for _, k := range sortedKeys(ev.OutputFields) {
		attrs = append(attrs, attribute.String(k, event.FieldText(ev.OutputFields[k])))
	}
	span.SetAttributes(attrs...)
	span.AddEvent(ev.Output, trace.WithTimestamp(ev.Time))
	span.End(trace.WithTimestamp(ev.Time.Add(t.duration)))
	return sink[0]
}

// TraceID is falcosidekick's trace id: FNV-128a of "namespace:pod", else of the container
// id (but "host"), else of evt.hostname. falcosidekick dropped an event with none of them;
// saker falls back to the event's hostname, then its uuid.
func TraceID(ev *event.Event) trace.TraceID {
	field := func(k string) string { s, _ := ev.OutputFields[k].(string); return s }
	key := ""
	switch ns, pod, cid, host := field("k8s.ns.name"), field("k8s.pod.name"), field("container.id"), field("evt.hostname"); {
	case ns != "" && pod != "":
		key = ns + ":" + pod
	case cid != "" && cid != "host":
		key = cid
	case host != "":
		key = host
	case ev.Hostname != "":
		key = ev.Hostname
	default:
		key = ev.UUID
	}
	h := fnv.New128a()
	h.Write([]byte(key))
	id, _ := trace.TraceIDFromHex(hex.EncodeToString(h.Sum(nil)))
	return id
}

// sinkKey carries, in the context a span starts with, where spanSink puts the span.
type sinkKey struct{}

// spanSink is the provider's span processor: it gives each span to the Send that started
// it (through the context), so the span is exported synchronously with the attempt's
// context instead of by the SDK's background batcher.
type spanSink struct{}

func (spanSink) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) {
	if sink, ok := ctx.Value(sinkKey{}).(*[]sdktrace.ReadWriteSpan); ok {
		*sink = append(*sink, s)
	}
}
func (spanSink) OnEnd(sdktrace.ReadOnlySpan)      {}
func (spanSink) Shutdown(context.Context) error   { return nil }
func (spanSink) ForceFlush(context.Context) error { return nil }

// Close shuts the exporter down (its connections).
func (t *Traces) Close() error {
	return shutdown(t.provider.Shutdown, t.exporter.Shutdown)
}

// shutdown runs the shutdown functions with a short deadline: nothing is buffered, so there
// is nothing to flush.
func shutdown(fns ...func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var first error
	for _, fn := range fns {
		if err := fn(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}
