package otlp

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"google.golang.org/grpc/credentials"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/tlsclient"
)

// LogsConfig is the otlp.logs section.
type LogsConfig struct {
	Config `koanf:",squash"`
}

func logsDefaults() *LogsConfig { return &LogsConfig{Config: Config{CheckCert: true}} }

// Validate names the key at fault.
func (c *LogsConfig) Validate() error {
	if c.Endpoint == "" {
		return nil
	}
	_, err := c.resolve(logsSignal, getenv)
	return err
}

func init() {
	s := outputs.Define(logsSignal.name, logsSignal.section, logsDefaults,
		func(c *LogsConfig) bool { return c.Endpoint != "" },
		func(c *LogsConfig, env outputs.Env) (delivery.Output, error) { return NewLogs(c, env) })
	s.Doc = "export each event as an OpenTelemetry log record (OTLP over HTTP or gRPC)"
	s.Batch = defaultBatch
	s.Aliases = []outputs.Alias{timeoutAlias(logsSignal.section)}
	outputs.Register(s)
}

// Logs is the otlp.logs output.
type Logs struct {
	set      settings
	exporter sdklog.Exporter
	provider *sdklog.LoggerProvider
	logger   otellog.Logger
}

// NewLogs builds the exporter; it does not connect: the first export does.
func NewLogs(c *LogsConfig, env outputs.Env) (*Logs, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s, err := c.resolve(logsSignal, getenv)
	if err != nil {
		return nil, err
	}
	exp, err := newLogExporter(s, c.CheckCert, env)
	if err != nil {
		return nil, fmt.Errorf("otlplogs: %w", err)
	}
	// The provider only builds records: recordSink hands each one to the Send that emitted
	// it, which exports it itself.
	p := sdklog.NewLoggerProvider(sdklog.WithResource(newResource("v0.1.0")), sdklog.WithProcessor(recordSink{}),
		sdklog.WithAttributeCountLimit(-1), sdklog.WithAttributeValueLengthLimit(-1))
	return &Logs{set: s, exporter: exp, provider: p, logger: p.Logger("falco")}, nil
}

func newLogExporter(s settings, checkCert bool, env outputs.Env) (sdklog.Exporter, error) {
	ctx := context.Background()
	timeout := exportTimeout(s, env)
	if s.protocol == GRPC {
		opts := []otlploggrpc.Option{otlploggrpc.WithEndpoint(s.host), otlploggrpc.WithHeaders(s.headers),
			otlploggrpc.WithTimeout(timeout), otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: false})}
		if s.gzip {
			opts = append(opts, otlploggrpc.WithCompressor("gzip"))
		}
		if s.insecure {
			opts = append(opts, otlploggrpc.WithInsecure())
		} else {
			tlsCfg, err := tlsclient.Config("", checkCert, false, env.TLS)
			if err != nil {
				return nil, err
			}
			opts = append(opts, otlploggrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		return otlploggrpc.New(ctx, opts...)
	}
	client, err := newHTTPClient(checkCert, env)
	if err != nil {
		return nil, err
	}
	opts := []otlploghttp.Option{otlploghttp.WithEndpoint(s.host), otlploghttp.WithURLPath(s.path),
		otlploghttp.WithHeaders(s.headers), otlploghttp.WithTimeout(timeout), otlploghttp.WithHTTPClient(client),
		otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false})}
	if s.gzip {
		opts = append(opts, otlploghttp.WithCompression(otlploghttp.GzipCompression))
	}
	if s.insecure {
		opts = append(opts, otlploghttp.WithInsecure())
	}
	return otlploghttp.New(ctx, opts...)
}

// Name implements delivery.Output.
func (l *Logs) Name() string { return logsSignal.name }

// Send exports the event's log record.
func (l *Logs) Send(ctx context.Context, ev *event.Event) error {
	return l.SendBatch(ctx, []*event.Event{ev})
}

// SendBatch exports the events' records in one request.
func (l *Logs) SendBatch(ctx context.Context, evs []*event.Event) error {
	records := make([]sdklog.Record, 0, len(evs))
	for _, ev := range evs {
		records = append(records, l.Record(ev))
	}
	return export(ctx, logsSignal, l.set, len(evs), func(ctx context.Context) error {
		return l.exporter.Export(ctx, records)
	})
}

// severities map Falco priorities onto OpenTelemetry severities (falcosidekick logged
// every event at INFO).
var severities = map[event.Priority]otellog.Severity{
	event.Emergency: otellog.SeverityFatal4, event.Alert: otellog.SeverityFatal,
	event.Critical: otellog.SeverityError4, event.Error: otellog.SeverityError,
	event.Warning: otellog.SeverityWarn, event.Notice: otellog.SeverityInfo2,
	event.Informational: otellog.SeverityInfo, event.Debug: otellog.SeverityDebug,
}

// Record builds ev's log record as falcosidekick's slog bridge did, under the scope "falco":
// the output line as body; priority, source, rule, hostname, tags (comma-separated) and
// timestamp (Go's time text) as attributes. saker adds the uuid and the output fields (as
// text), sets the record's time to the event's and its severity from the priority.
func (l *Logs) Record(ev *event.Event) sdklog.Record {
	var r otellog.Record
	r.SetTimestamp(ev.Time)
	r.SetObservedTimestamp(time.Now())
	r.SetSeverity(severities[ev.Priority])
	r.SetSeverityText(ev.Priority.String())
	r.SetBody(attribute.StringValue(ev.Output))
	r.AddAttributes(attribute.String("priority", ev.Priority.String()), attribute.String("source", ev.Source),
		attribute.String("rule", ev.Rule), attribute.String("hostname", ev.Hostname),
		attribute.String("tags", strings.Join(ev.Tags, ",")), attribute.String("timestamp", ev.Time.Round(0).String()),
		attribute.String("uuid", ev.UUID))
	for _, k := range sortedKeys(ev.OutputFields) {
		r.AddAttributes(attribute.String(k, event.FieldText(ev.OutputFields[k])))
	}
	var sink []sdklog.Record
	l.logger.Emit(context.WithValue(context.Background(), sinkKey{}, &sink), r)
	return sink[0]
}

// recordSink is the provider's processor: it gives each record to the Send that emitted it
// (through the context), so the record is exported synchronously with the attempt's context.
type recordSink struct{}

func (recordSink) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (recordSink) OnEmit(ctx context.Context, r *sdklog.Record) error {
	if sink, ok := ctx.Value(sinkKey{}).(*[]sdklog.Record); ok {
		*sink = append(*sink, r.Clone())
	}
	return nil
}
func (recordSink) Shutdown(context.Context) error   { return nil }
func (recordSink) ForceFlush(context.Context) error { return nil }

// Close shuts the exporter down (its connections).
func (l *Logs) Close() error {
	return shutdown(l.provider.Shutdown, l.exporter.Shutdown)
}
