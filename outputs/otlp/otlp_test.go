package otlp

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		name string
		sig  signal
		cfg  Config
		env  map[string]string
		want settings
	}{
		{"defaults http", tracesSignal, Config{Endpoint: "http://c:4318"}, nil,
			settings{protocol: HTTPProtobuf, host: "c:4318", path: "/v1/traces", insecure: true, logURL: "http://c:4318"}},
		{"metrics default grpc", metricsSignal, Config{Endpoint: "https://c:4317"}, nil,
			settings{protocol: GRPC, host: "c:4317", path: "/v1/metrics", logURL: "https://c:4317"}},
		{"path kept, http/json", logsSignal, Config{Endpoint: "http://c/otlp/logs", Protocol: "http/json"}, nil,
			settings{protocol: HTTPProtobuf, host: "c", path: "/otlp/logs", insecure: true, logURL: "http://c/otlp/logs"}},
		{"environment under the keys", tracesSignal, Config{Endpoint: "http://c:4318", Headers: "a=1"},
			map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "a=2,b=3", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
				"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
			settings{protocol: GRPC, host: "c:4318", path: "/v1/traces", insecure: true, headers: map[string]string{"a": "1"},
				timeout: 2500 * time.Millisecond, gzip: true, logURL: "http://c:4318"}},
		{"extraenvvars over the keys, signal-specific first", logsSignal, Config{Endpoint: "http://c:4318", Protocol: "grpc",
			Headers: "a=1", ExtraEnvVars: map[string]string{"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://d:9/x",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_HEADERS": "k=v%2Cw",
				"OTEL_EXPORTER_OTLP_TIMEOUT": "100", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "200",
				"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "300"}}, nil,
			settings{protocol: HTTPProtobuf, host: "d:9", path: "/x", insecure: true, headers: map[string]string{"k": "v,w"},
				timeout: 200 * time.Millisecond, logURL: "http://d:9/x"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.cfg.resolve(c.sig, env(c.env))
			if err != nil {
				t.Fatal(err)
			}
			if !equalSettings(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func equalSettings(a, b settings) bool {
	if len(a.headers)+len(b.headers) > 0 && !reflect.DeepEqual(a.headers, b.headers) {
		return false
	}
	a.headers, b.headers = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestResolveErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		env  map[string]string
		want string
	}{
		{Config{Endpoint: "c:4318"}, nil, "otlp.traces.endpoint: missing scheme"},
		{Config{Endpoint: "ftp://c"}, nil, "otlp.traces.endpoint must be an http:// or https:// URL"},
		{Config{Endpoint: "http://c", Protocol: "thrift"}, nil, `otlp.traces.protocol must be http/protobuf, http/json or grpc, got "thrift"`},
		{Config{Endpoint: "http://c", Protocol: "grpc"}, map[string]string{}, ""},
		{Config{Endpoint: "http://c/v1/traces", Protocol: "grpc"}, nil, "a gRPC endpoint takes no path"},
		{Config{Endpoint: "http://c", TLS: true}, nil, "otlp.traces.tls is true but otlp.traces.endpoint is an http:// URL"},
		{Config{Endpoint: "http://c", Headers: "Authorization"}, nil, "otlp.traces.headers: item 1 is not name=value"},
		{Config{Endpoint: "http://c", Headers: "Bad Name=secretvalue"}, nil, "not a valid header name"},
		{Config{Endpoint: "http://c", ExtraEnvVars: map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "a=b"}}, nil,
			"otlp.traces.extraenvvars: OTEL_RESOURCE_ATTRIBUTES is not supported"},
		{Config{Endpoint: "http://c", ExtraEnvVars: map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}}, nil,
			`otlp.traces.extraenvvars.OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT must be a number of milliseconds, got "10s"`},
		{Config{Endpoint: "http://c"}, map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION must be gzip or none"},
	} {
		_, err := c.cfg.resolve(tracesSignal, env(c.env))
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.cfg, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secretvalue") {
			t.Errorf("error shows a header value: %v", err)
		}
	}
	if err := (&MetricsConfig{Config: Config{Endpoint: "http://c"}, ExtraAttributes: []string{"k8s.pod.name", "bad-name"}}).Validate(); err == nil ||
		!strings.Contains(err.Error(), `otlp.metrics.extraattributes: "bad-name"`) {
		t.Errorf("extraattributes: %v", err)
	}
	if err := (&TracesConfig{Config: Config{Endpoint: "http://c"}, Duration: -1}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "otlp.traces.duration") {
		t.Errorf("duration: %v", err)
	}
}

func TestTimeoutAlias(t *testing.T) {
	a := timeoutAlias("otlp.logs")
	for in, want := range map[string]any{"10000": "10s", "250": "250ms", "3s": "3s", "0": nil, "": nil} {
		got, err := a.Expand(in)
		if err != nil || got["otlp.logs.timeout"] != want && !(want == nil && got == nil) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-5", "ten"} {
		if _, err := a.Expand(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// capture is an OTLP/HTTP receiver that keeps each request and answers status with body.
type capture struct {
	mu       sync.Mutex
	requests []*http.Request
	bodies   [][]byte
	status   int
	header   http.Header
	answer   []byte
	answerCT string
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.requests, c.bodies = append(c.requests, r), append(c.bodies, b)
	status, answer, ct := c.status, c.answer, c.answerCT
	for k, v := range c.header {
		w.Header()[k] = v
	}
	c.mu.Unlock()
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(answer)
}

func newOutputs(t *testing.T, endpoint, protocol string) (*Traces, *Logs, *Metrics) {
	t.Helper()
	base := Config{Endpoint: endpoint, Protocol: protocol, Headers: "Authorization=Bearer%20tok,X-Scope=falco", CheckCert: true}
	e := outputs.Env{CustomFields: []string{"environment"}}
	tr, err := NewTraces(&TracesConfig{Config: base, Duration: 1000}, e)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := NewLogs(&LogsConfig{Config: base}, e)
	if err != nil {
		t.Fatal(err)
	}
	mt, err := NewMetrics(&MetricsConfig{Config: base, ExtraAttributes: []string{"proc.name"}}, e)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(); _ = lg.Close(); _ = mt.Close() })
	return tr, lg, mt
}

// TestPayloadGolden records the OTLP/HTTP requests for the recorded events and compares
// them, as OTLP JSON, with the golden files (span ids and the metric's timestamps, which
// change on every run, are zeroed).
func TestPayloadGolden(t *testing.T) {
	rec := &capture{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	tr, lg, mt := newOutputs(t, srv.URL, HTTPProtobuf)
	evs := goldens.Events(t, func(name string) string { return "uuid-" + name })
	var batch []*event.Event
	for _, n := range goldens.Names(evs) {
		ev := evs[n].Clone()
		ev.OutputFields["environment"] = "prod"
		batch = append(batch, ev)
	}
	ctx := context.Background()
	if err := tr.SendBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := lg.SendBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := mt.SendBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if len(rec.requests) != 3 {
		t.Fatalf("%d requests, want 3 (one per signal)", len(rec.requests))
	}
	for i, want := range []struct {
		path string
		msg  proto.Message
	}{
		{"/v1/traces", &coltracepb.ExportTraceServiceRequest{}},
		{"/v1/logs", &collogspb.ExportLogsServiceRequest{}},
		{"/v1/metrics", &colmetricpb.ExportMetricsServiceRequest{}},
	} {
		r := rec.requests[i]
		if r.URL.Path != want.path || r.Header.Get("Content-Type") != "application/x-protobuf" ||
			r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("X-Scope") != "falco" {
			t.Errorf("request %d: %s %v", i, r.URL.Path, r.Header)
		}
		if err := proto.Unmarshal(rec.bodies[i], want.msg); err != nil {
			t.Fatal(err)
		}
		normalize(want.msg)
		b, err := protojson.Marshal(want.msg)
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, b); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(want.path, "/v1/") + ".json"
		goldens.Check(t, filepath.Join("testdata", "golden", name), goldens.IndentJSON(t, compact.Bytes()))
	}
}

// normalize zeroes what changes on every run.
func normalize(m proto.Message) {
	switch m := m.(type) {
	case *coltracepb.ExportTraceServiceRequest:
		for _, rs := range m.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					s.SpanId = nil
				}
			}
		}
	case *collogspb.ExportLogsServiceRequest:
		for _, rl := range m.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				for _, l := range sl.LogRecords {
					l.ObservedTimeUnixNano = 0
				}
			}
		}
	case *colmetricpb.ExportMetricsServiceRequest:
		for _, rm := range m.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, mt := range sm.Metrics {
					dps := mt.GetSum().GetDataPoints()
					for _, dp := range dps {
						dp.StartTimeUnixNano, dp.TimeUnixNano = 0, 0
					}
					// the SDK keeps its series in a map: order them
					key := func(dp *metricpb.NumberDataPoint) string {
						var b strings.Builder
						for _, kv := range dp.Attributes {
							b.WriteString(kv.Key + "=" + kv.Value.GetStringValue())
							for _, v := range kv.Value.GetArrayValue().GetValues() {
								b.WriteString("," + v.GetStringValue())
							}
							b.WriteString(";")
						}
						return b.String()
					}
					sort.Slice(dps, func(i, j int) bool { return key(dps[i]) < key(dps[j]) })
				}
			}
		}
	}
}

// TestHTTPErrors: the receiver's answers decide retry or not, as for every HTTP output.
func TestHTTPErrors(t *testing.T) {
	rec := &capture{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	tr, lg, mt := newOutputs(t, srv.URL, HTTPProtobuf)
	ev := &event.Event{UUID: "u", Rule: "r", Priority: event.Error, Output: "o", Time: time.Now(), Source: "syscalls"}
	sends := map[string]func() error{
		"traces":  func() error { return tr.Send(context.Background(), ev) },
		"logs":    func() error { return lg.Send(context.Background(), ev) },
		"metrics": func() error { return mt.Send(context.Background(), ev) },
	}
	partial := map[string]proto.Message{
		"traces":  &coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 1, ErrorMessage: "too old"}},
		"logs":    &collogspb.ExportLogsServiceResponse{PartialSuccess: &collogspb.ExportLogsPartialSuccess{RejectedLogRecords: 1, ErrorMessage: "too old"}},
		"metrics": &colmetricpb.ExportMetricsServiceResponse{PartialSuccess: &colmetricpb.ExportMetricsPartialSuccess{RejectedDataPoints: 1, ErrorMessage: "too old"}},
	}
	for name, send := range sends {
		set := func(status int, header http.Header, answer []byte, ct string) {
			rec.mu.Lock()
			rec.status, rec.header, rec.answer, rec.answerCT = status, header, answer, ct
			rec.mu.Unlock()
		}
		set(http.StatusBadRequest, nil, []byte("bad"), "")
		if err := send(); !delivery.IsPermanent(err) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s 400: %v, want permanent", name, err)
		}
		set(http.StatusServiceUnavailable, http.Header{"Retry-After": {"7"}}, nil, "")
		if err := send(); err == nil || delivery.IsPermanent(err) {
			t.Errorf("%s 503: %v, want transient", name, err)
		} else if d, ok := delivery.RetryAfterHint(err); !ok || d != 7*time.Second {
			t.Errorf("%s 503 Retry-After 7: hint %v %v", name, d, ok)
		}
		set(http.StatusInternalServerError, nil, nil, "")
		if err := send(); err == nil || delivery.IsPermanent(err) {
			t.Errorf("%s 500: %v, want transient", name, err)
		}
		b, _ := proto.Marshal(partial[name])
		set(http.StatusOK, nil, b, "application/x-protobuf")
		if err := send(); !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "too old") {
			t.Errorf("%s partial success: %v, want permanent", name, err)
		}
		set(http.StatusOK, nil, nil, "")
		if err := send(); err != nil {
			t.Errorf("%s 200: %v", name, err)
		}
	}
}

// traceServer is an OTLP/gRPC trace receiver answering with code.
type traceServer struct {
	coltracepb.UnimplementedTraceServiceServer
	code codes.Code
	got  chan struct{}
}

func (s *traceServer) Export(context.Context, *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	if s.got != nil {
		s.got <- struct{}{}
	}
	if s.code != codes.OK {
		return nil, status.Error(s.code, "answer "+s.code.String())
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func TestGRPCErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &traceServer{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, ts)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()
	tr, err := NewTraces(&TracesConfig{Config: Config{Endpoint: "http://" + l.Addr().String(), Protocol: GRPC, CheckCert: true}}, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ev := &event.Event{UUID: "u", Rule: "r", Output: "o", Time: time.Now()}
	for code, permanent := range map[codes.Code]bool{codes.OK: false, codes.InvalidArgument: true, codes.Unauthenticated: true,
		codes.PermissionDenied: true, codes.Unimplemented: true, codes.Unavailable: false, codes.ResourceExhausted: false} {
		ts.code = code
		err := tr.Send(context.Background(), ev)
		switch {
		case code == codes.OK && err != nil:
			t.Errorf("OK: %v", err)
		case code != codes.OK && (err == nil || delivery.IsPermanent(err) != permanent):
			t.Errorf("%s: %v, want permanent=%v", code, err, permanent)
		}
	}
}

// TestDeadline: a receiver that takes the request and never answers must not hold Send
// past the attempt's deadline; the failure is worth a retry.
func TestDeadline(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)            // before srv.Close, which waits for the handlers
	silent := testpeers.Silent(t) // takes gRPC connections and says nothing
	ev := &event.Event{UUID: "u", Rule: "r", Output: "o", Time: time.Now()}
	for _, target := range []struct{ endpoint, protocol string }{{srv.URL, HTTPProtobuf}, {"http://" + silent, GRPC}} {
		tr, lg, mt := newOutputs(t, target.endpoint, target.protocol)
		for name, o := range map[string]delivery.Sender{"traces": tr, "logs": lg, "metrics": mt} {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			start := time.Now()
			err := o.Send(ctx, ev)
			cancel()
			if err == nil || delivery.IsPermanent(err) || time.Since(start) > 3*time.Second {
				t.Errorf("%s %s: %v after %s, want a transient error soon after 300ms", target.protocol, name, err, time.Since(start))
			}
			if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "DeadlineExceeded") &&
				!strings.Contains(err.Error(), "deadline") {
				t.Errorf("%s %s: %v, want a deadline error", target.protocol, name, err)
			}
		}
	}
}

func TestTraceID(t *testing.T) {
	pod := &event.Event{OutputFields: map[string]any{"k8s.ns.name": "ns", "k8s.pod.name": "p", "container.id": "c1"}}
	ctr := &event.Event{OutputFields: map[string]any{"container.id": "c1", "evt.hostname": "h"}}
	host := &event.Event{OutputFields: map[string]any{"container.id": "host", "evt.hostname": "h"}}
	bare := &event.Event{Hostname: "h"}
	if TraceID(pod) == TraceID(ctr) || TraceID(ctr) == TraceID(host) || TraceID(host) != TraceID(bare) {
		t.Error("trace ids: pod, container, host must differ; evt.hostname and hostname agree")
	}
	h := fnv.New128a() // falcosidekick's id: FNV-128a of "namespace:pod" in hex
	h.Write([]byte("ns:p"))
	if got, want := TraceID(pod).String(), hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("trace id %s, want %s", got, want)
	}
}
