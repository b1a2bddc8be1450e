// Package otlp sends events as OpenTelemetry data, as falcosidekick's otlp.traces,
// otlp.logs and otlp.metrics outputs do: a span, a log record or a rule-match counter per
// event, exported with the go.opentelemetry.io/otel OTLP exporters over HTTP (protobuf) or
// gRPC.
//
// falcosidekick handed events to the SDK's background batchers, so a failed export was only
// logged. Here every Send (or SendBatch) exports synchronously with the attempt's context,
// the exporters' own retries are off, and the returned error tells the delivery engine
// whether to retry (connection refused, 429/503, gRPC Unavailable) or give up (400, 401,
// gRPC InvalidArgument, a partial-success rejection).
package otlp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// Protocols.
const (
	HTTPProtobuf = "http/protobuf"
	HTTPJSON     = "http/json"
	GRPC         = "grpc"
)

// Config holds the keys the three sections share (otlp.traces, otlp.logs, otlp.metrics).
// otlp.<signal>.timeout is the delivery timeout, read in milliseconds when it has no unit
// (see timeoutAlias).
type Config struct {
	Endpoint     string            `koanf:"endpoint" doc:"OTLP receiver URL, http(s)://host:port[/path] (4318 for HTTP, 4317 for gRPC); without a path, /v1/<signal> over HTTP; setting it enables the output"`
	Protocol     string            `koanf:"protocol" doc:"http/protobuf or grpc (http/json is accepted and sent as http/protobuf, as falcosidekick did); empty: OTEL_EXPORTER_OTLP_[<SIGNAL>_]PROTOCOL, else http/protobuf for traces and logs, grpc for metrics"`
	Headers      string            `koanf:"headers" secret:"true" doc:"headers of every export, key=value,key2=value2 (values may be percent-encoded, as in OTEL_EXPORTER_OTLP_HEADERS)"`
	ExtraEnvVars map[string]string `koanf:"extraenvvars" secret:"true" doc:"OTEL_EXPORTER_OTLP_[<SIGNAL>_]{ENDPOINT,PROTOCOL,HEADERS,TIMEOUT,COMPRESSION} values that override the other keys; the process environment is never changed"`
	TLS          bool              `koanf:"tls" doc:"accepted for falcosidekick files: TLS follows the endpoint's scheme (https://); true with an http:// endpoint is an error"`
	CheckCert    bool              `koanf:"checkcert" doc:"verify the receiver's TLS certificate"`
}

// signal is what differs between the three outputs.
type signal struct {
	name, section   string
	env             string // TRACES, LOGS, METRICS
	path            string // default URL path over HTTP
	defaultProtocol string
}

var (
	tracesSignal  = signal{name: "otlptraces", section: "otlp.traces", env: "TRACES", path: "/v1/traces", defaultProtocol: HTTPProtobuf}
	logsSignal    = signal{name: "otlplogs", section: "otlp.logs", env: "LOGS", path: "/v1/logs", defaultProtocol: HTTPProtobuf}
	metricsSignal = signal{name: "otlpmetrics", section: "otlp.metrics", env: "METRICS", path: "/v1/metrics", defaultProtocol: GRPC}
)

// envSuffixes are the OTEL_EXPORTER_OTLP_* settings extraenvvars may carry.
var envSuffixes = []string{"ENDPOINT", "PROTOCOL", "HEADERS", "TIMEOUT", "COMPRESSION"}

// settings are the resolved exporter settings of one output.
type settings struct {
	protocol string
	host     string // host:port
	path     string // HTTP only
	insecure bool   // http:// scheme
	headers  map[string]string
	timeout  time.Duration // 0: the attempt's deadline only
	gzip     bool
	logURL   string // endpoint without credentials, for errors
}

// resolve checks c and works out the exporter settings: extraenvvars first (the
// signal-specific variable before the generic one), then the section's keys, then the
// OTEL_EXPORTER_OTLP_* variables of the process environment (getenv).
func (c *Config) resolve(sig signal, getenv func(string) string) (settings, error) {
	var s settings
	for name := range c.ExtraEnvVars {
		if err := checkExtraVar(sig, name); err != nil {
			return s, err
		}
	}
	extra := func(suffix string) (string, bool) {
		for _, name := range []string{"OTEL_EXPORTER_OTLP_" + sig.env + "_" + suffix, "OTEL_EXPORTER_OTLP_" + suffix} {
			if v, ok := c.ExtraEnvVars[name]; ok {
				return strings.TrimSpace(v), true
			}
		}
		return "", false
	}
	fromEnv := func(suffix string) string {
		if v := getenv("OTEL_EXPORTER_OTLP_" + sig.env + "_" + suffix); v != "" {
			return strings.TrimSpace(v)
		}
		return strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_" + suffix))
	}
	pick := func(suffix, key string) (value, from string) {
		if v, ok := extra(suffix); ok {
			return v, sig.section + ".extraenvvars." + "OTEL_EXPORTER_OTLP_[" + sig.env + "_]" + suffix
		}
		if key != "" {
			return key, sig.section + "." + strings.ToLower(suffix)
		}
		return fromEnv(suffix), "OTEL_EXPORTER_OTLP_[" + sig.env + "_]" + suffix
	}

	endpoint, from := pick("ENDPOINT", strings.TrimSpace(c.Endpoint))
	if err := outputs.ValidateURL(from, endpoint); err != nil {
		return s, err
	}
	u, _ := url.Parse(endpoint) // ValidateURL parsed it
	s.host, s.insecure, s.logURL = u.Host, u.Scheme == "http", httpout.Redact(endpoint)
	if c.TLS && s.insecure {
		return s, fmt.Errorf("%s.tls is true but %s is an http:// URL: use https:// for TLS", sig.section, from)
	}
	s.path = u.Path
	if s.path == "" || s.path == "/" {
		s.path = sig.path
	}

	proto, from := pick("PROTOCOL", strings.TrimSpace(c.Protocol))
	switch proto {
	case "":
		s.protocol = sig.defaultProtocol
	case HTTPProtobuf, HTTPJSON:
		s.protocol = HTTPProtobuf
	case GRPC:
		s.protocol = GRPC
	default:
		return s, fmt.Errorf("%s must be http/protobuf, http/json or grpc, got %q", from, proto)
	}
	if s.protocol == GRPC && u.Path != "" && u.Path != "/" {
		return s, fmt.Errorf("%s: a gRPC endpoint takes no path, got %q", from, u.Path)
	}

	headers, from := pick("HEADERS", strings.TrimSpace(c.Headers))
	var err error
	if s.headers, err = parseHeaders(from, headers); err != nil {
		return s, err
	}

	if v, from := pick("TIMEOUT", ""); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 {
			return s, fmt.Errorf("%s must be a number of milliseconds, got %q", from, v)
		}
		s.timeout = time.Duration(ms) * time.Millisecond
	}

	switch v, from := pick("COMPRESSION", ""); v {
	case "", "none":
	case "gzip":
		s.gzip = true
	default:
		return s, fmt.Errorf("%s must be gzip or none, got %q", from, v)
	}
	return s, nil
}

// checkExtraVar accepts the OTEL_EXPORTER_OTLP_* settings saker reads. A variable of
// another signal (falcosidekick's example puts OTEL_EXPORTER_OTLP_TRACES_TIMEOUT under
// otlp.logs) is accepted and does not apply.
func checkExtraVar(sig signal, name string) error {
	rest, ok := strings.CutPrefix(name, "OTEL_EXPORTER_OTLP_")
	if ok {
		for _, other := range []string{"TRACES_", "LOGS_", "METRICS_"} {
			rest = strings.TrimPrefix(rest, other)
		}
		for _, suffix := range envSuffixes {
			if rest == suffix {
				return nil
			}
		}
	}
	return fmt.Errorf("%s.extraenvvars: %s is not supported; use OTEL_EXPORTER_OTLP_[%s_]{%s}",
		sig.section, name, sig.env, strings.Join(envSuffixes, ","))
}

// parseHeaders reads "k=v,k2=v2" as OTEL_EXPORTER_OTLP_HEADERS does (values percent-decoded).
// Errors name the key and header, never a value.
func parseHeaders(key, text string) (map[string]string, error) {
	if text == "" {
		return nil, nil
	}
	out := map[string]string{}
	for i, pair := range strings.Split(text, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		name, value, ok := strings.Cut(pair, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("%s: item %d is not name=value (expected \"name=value,name2=value2\")", key, i+1)
		}
		v, err := url.PathUnescape(strings.TrimSpace(value))
		if err != nil {
			return nil, fmt.Errorf("%s: the value of header %q is not valid percent-encoding (value not shown)", key, name)
		}
		out[name] = v
	}
	return out, outputs.CheckHeaders(key, out)
}

// newResource is falcosidekick's resource: service.name falco and its service.version.
func newResource(version string) *resource.Resource {
	return resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("falco"), semconv.ServiceVersion(version))
}

// httpAnswer records the status of an export's HTTP answer, for classify: the HTTP
// exporters return plain error texts, the status code is only known to the transport.
type httpAnswer struct {
	status int
	header http.Header
}

type answerKey struct{}

// answerTransport notes the status of each answer in the httpAnswer carried by the
// request's context.
type answerTransport struct{ next http.RoundTripper }

func (t answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if a, ok := r.Context().Value(answerKey{}).(*httpAnswer); ok && resp != nil {
		a.status, a.header = resp.StatusCode, resp.Header
	}
	return resp, err
}

// newHTTPClient is httpout's transport (TLS policy, proxies, pooling) with the answer
// recorder; no client timeout: the attempt's context bounds every export.
func newHTTPClient(checkCert bool, env outputs.Env) (*http.Client, error) {
	tr, err := httpout.NewTransport(httpout.Options{CheckCert: checkCert, TLS: env.TLS, MaxConns: env.Policy.MaxConcurrentRequests})
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: answerTransport{tr}}, nil
}

// exportTimeout is the exporter's own bound on one export: OTEL_EXPORTER_OTLP_*TIMEOUT when
// given, else the delivery timeout, so the attempt's context decides.
func exportTimeout(s settings, env outputs.Env) time.Duration {
	if s.timeout > 0 {
		return s.timeout
	}
	if env.Policy.Timeout > 0 {
		return env.Policy.Timeout
	}
	return 10 * time.Second
}

// export runs one export with an answer recorder in its context and classifies its error.
func export(ctx context.Context, sig signal, s settings, n int, do func(context.Context) error) error {
	ans := &httpAnswer{}
	err := do(context.WithValue(ctx, answerKey{}, ans))
	if err == nil {
		return nil
	}
	what := "event"
	if n != 1 {
		what = strconv.Itoa(n) + " events"
	}
	err = fmt.Errorf("%s: export of %s to %s (%s): %w", sig.name, what, s.logURL, s.protocol, err)
	return classify(ctx, err, ans)
}

// classify maps an export error onto the delivery engine's: HTTP statuses as httpout does
// (429/503 with Retry-After, 408 and 5xx transient, other 4xx permanent), gRPC codes as the
// OTLP specification does (Unavailable, ResourceExhausted, DeadlineExceeded, Aborted,
// OutOfRange, DataLoss, Canceled transient, the others permanent), and a 2xx answer that
// still failed (a partial success: the receiver rejected items and asks not to resend
// them) permanent. Network errors and timeouts are transient.
func classify(ctx context.Context, err error, ans *httpAnswer) error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	if ans.status != 0 {
		if ans.status/100 == 2 {
			return delivery.Permanent(err)
		}
		hint := httpout.StatusError("POST", "", ans.status, ans.header, nil)
		if delivery.IsPermanent(hint) {
			return delivery.Permanent(err)
		}
		if d, ok := delivery.RetryAfterHint(hint); ok {
			return delivery.RetryAfter(err, d)
		}
		return err
	}
	if strings.Contains(err.Error(), "OTLP partial success") { // the exporters' internal PartialSuccess
		return delivery.Permanent(err)
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted,
			codes.OutOfRange, codes.DataLoss, codes.Canceled, codes.Unknown:
			return err
		default:
			return delivery.Permanent(err)
		}
	}
	return err
}

// stringsAttr is attribute.StringSlice with a nil slice as an empty list.
func stringsAttr(key string, v []string) attribute.KeyValue {
	if v == nil {
		v = []string{}
	}
	return attribute.StringSlice(key, v)
}

// sortedKeys returns m's keys in order, so attributes come out the same on every run.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// timeoutAlias reads otlp.<signal>.timeout, falcosidekick's milliseconds, as the delivery
// timeout: a bare number is milliseconds, a duration ("10s") is taken as it is, 0 keeps the
// default.
func timeoutAlias(section string) outputs.Alias {
	key := section + ".timeout"
	return outputs.Alias{Path: key, Type: "int or duration",
		Doc: "deadline of one export (the delivery timeout); a bare number is milliseconds, as in falcosidekick (10000 = 10s)",
		Expand: func(v string) (map[string]any, error) {
			v = strings.TrimSpace(v)
			if v == "" || v == "0" {
				return nil, nil
			}
			if ms, err := strconv.Atoi(v); err == nil {
				if ms < 0 {
					return nil, fmt.Errorf("invalid value %q: want milliseconds >= 0 or a duration", v)
				}
				return map[string]any{key: (time.Duration(ms) * time.Millisecond).String()}, nil
			}
			if _, err := time.ParseDuration(v); err != nil {
				return nil, fmt.Errorf("invalid value %q: want milliseconds or a duration such as 10s", v)
			}
			return map[string]any{key: v}, nil
		}}
}

// getenv is os.Getenv, replaced in tests.
var getenv = os.Getenv
