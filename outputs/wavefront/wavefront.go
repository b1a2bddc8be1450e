// Package wavefront sends each event as a point of a counter metric to Wavefront (VMware
// Aria Operations for Applications), through a proxy (TCP, the proxy's metrics port) or
// directly (HTTPS with an API token), as falcosidekick does: value 1 at the event's time,
// tagged with the severity, rule, source, hostname, output fields and tags.
package wavefront

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/tcpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the wavefront.* section.
type Config struct {
	EndpointType         string `koanf:"endpointtype" doc:"proxy (a Wavefront proxy's metrics port) or direct (the Wavefront API with a token); with endpointhost, setting it enables the output"`
	EndpointHost         string `koanf:"endpointhost" doc:"proxy host name, or the direct endpoint's host (example.wavefront.com)"`
	EndpointToken        string `koanf:"endpointtoken" secret:"true" doc:"API token (direct)"`
	EndpointMetricPort   int    `koanf:"endpointmetricport" doc:"the proxy's metrics port (proxy)"`
	MetricName           string `koanf:"metricname" doc:"name of the metric each event adds a point to"`
	BatchSize            int    `koanf:"batchsize" doc:"accepted for falcosidekick compatibility; saker sends each point as it comes"`
	FlushIntervalSeconds int    `koanf:"flushintervalseconds" doc:"accepted for falcosidekick compatibility; saker sends each point as it comes"`
	CheckCert            bool   `koanf:"checkcert" doc:"verify the server's TLS certificate (direct)"`
}

func defaults() *Config {
	return &Config{EndpointMetricPort: 2878, MetricName: "falco.alert", BatchSize: 10000, FlushIntervalSeconds: 1, CheckCert: true}
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.EndpointType == "" && c.EndpointHost == "" {
		return nil
	}
	switch {
	case c.EndpointHost == "":
		return fmt.Errorf("wavefront.endpointhost is required with wavefront.endpointtype")
	case c.EndpointType != "proxy" && c.EndpointType != "direct":
		return fmt.Errorf("wavefront.endpointtype must be proxy or direct, got %q", c.EndpointType)
	case c.EndpointType == "direct" && c.EndpointToken == "":
		return fmt.Errorf("wavefront.endpointtoken is required with wavefront.endpointtype direct")
	case c.EndpointType == "proxy" && (c.EndpointMetricPort <= 0 || c.EndpointMetricPort > 65535):
		return fmt.Errorf("wavefront.endpointmetricport must be a port number, got %d", c.EndpointMetricPort)
	case c.MetricName == "" || strings.ContainsAny(c.MetricName, " \"\n"):
		return fmt.Errorf("wavefront.metricname must be a metric name, got %q", c.MetricName)
	}
	return nil
}

func init() {
	s := outputs.Define("wavefront", "wavefront", defaults,
		func(c *Config) bool { return c.EndpointType != "" || c.EndpointHost != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "add a point per event to a Wavefront metric (proxy or direct)"
	outputs.Register(s)
}

// New builds the output: a line per event to the proxy, or a POST of it to the direct
// ingestion API (/report?f=wavefront).
func New(c *Config, env outputs.Env) (delivery.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.EndpointType == "proxy" {
		return &Proxy{metric: c.MetricName, conn: tcpout.New(net.JoinHostPort(c.EndpointHost, strconv.Itoa(c.EndpointMetricPort)), nil)}, nil
	}
	host := c.EndpointHost
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	return falcopost.New(falcopost.Options{Name: "wavefront", URL: strings.TrimSuffix(host, "/") + "/report?f=wavefront",
		ContentType: "text/plain", Headers: map[string]string{"Authorization": "Bearer " + c.EndpointToken}, CheckCert: c.CheckCert,
		Body: func(ev *event.Event) ([]byte, error) { return Line(c.MetricName, ev), nil }}, env)
}

// Proxy is the output in proxy mode.
type Proxy struct {
	metric string
	conn   *tcpout.Client
}

// Name implements delivery.Output.
func (p *Proxy) Name() string { return "wavefront" }

// Send writes the event's point to the proxy.
func (p *Proxy) Send(ctx context.Context, ev *event.Event) error {
	if err := p.conn.Write(ctx, Line(p.metric, ev)); err != nil {
		return fmt.Errorf("wavefront: %w", err)
	}
	return nil
}

// Close closes the proxy connection.
func (p *Proxy) Close() error { return p.conn.Close() }

// maxTag is Wavefront's limit on a point tag's key and value together.
const maxTag = 254

// Line returns ev as a point in Wavefront's data format, with a newline:
// metric 1 <epoch seconds> source="falco-exporter" severity="…" rule="…" …
// Tags are the severity, rule, source, hostname, every output field (of any JSON type; null
// and empty ones left out) and the event's tags joined by ", ", quoted and escaped, each
// cut to Wavefront's 254 bytes of key and value.
func Line(metric string, ev *event.Event) []byte {
	b := make([]byte, 0, 512)
	b = append(b, metric...)
	b = append(b, " 1 "...)
	b = strconv.AppendInt(b, ev.Time.Unix(), 10)
	b = append(b, ` source="falco-exporter"`...)
	tag := func(k, v string) {
		if v == "" || v == "null" {
			return
		}
		k = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
				return r
			}
			return '_'
		}, k)
		v = cutBytes(v, max(maxTag-len(k)-1, 1))
		b = append(b, ' ')
		b = append(b, k...)
		b = append(b, `="`...)
		b = append(b, tagValue.Replace(v)...)
		b = append(b, '"')
	}
	tag("severity", ev.Priority.String())
	tag("rule", ev.Rule)
	tag("source", ev.Source)
	tag("hostname", ev.Hostname)
	for _, k := range chat.SortedKeys(ev.OutputFields) {
		tag(k, chat.FieldValue(ev.OutputFields[k]))
	}
	tag("tags", strings.Join(ev.Tags, ", "))
	return append(b, '\n')
}

// cutBytes shortens s to at most n bytes on a character boundary (Wavefront counts the
// tag's bytes).
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// tagValue escapes a quoted point tag value: quotes and backslashes, and line breaks (a
// point is one line).
var tagValue = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`)
