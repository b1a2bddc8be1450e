// Package influxdb writes each event as a point of the "events" measurement to InfluxDB,
// through the 1.x /write API (database) or the 2.x /api/v2/write API (token, organization,
// bucket), in line protocol as falcosidekick does: the rule, priority, source, output fields,
// hostname and tags as tags, the output line as the field "value" — escaped correctly.
package influxdb

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
)

// Config is the influxdb.* section.
type Config struct {
	HostPort     string `koanf:"hostport" doc:"InfluxDB address, http(s)://host:port; setting it enables the output"`
	Database     string `koanf:"database" doc:"database (1.x API)"`
	Organization string `koanf:"organization" doc:"organization (2.x API, with token)"`
	Bucket       string `koanf:"bucket" doc:"bucket (2.x API, with token)"`
	Precision    string `koanf:"precision" doc:"timestamp precision: ns, us, ms or s"`
	User         string `koanf:"user" doc:"user (1.x API with authentication)"`
	Password     string `koanf:"password" secret:"true" doc:"password (1.x API with authentication)"`
	Token        string `koanf:"token" secret:"true" doc:"API token; setting it selects the 2.x API (organization and bucket)"`
	CheckCert    bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS    bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config {
	return &Config{Database: "falco", Bucket: "falco", Precision: "ns", CheckCert: true}
}

var precisions = map[string]time.Duration{"ns": time.Nanosecond, "us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.HostPort == "" {
		return nil
	}
	if err := outputs.ValidateURL("influxdb.hostport", c.HostPort); err != nil {
		return err
	}
	if _, ok := precisions[c.Precision]; !ok {
		return fmt.Errorf("influxdb.precision must be ns, us, ms or s, got %q", c.Precision)
	}
	switch {
	case c.Token != "" && c.Organization == "":
		return fmt.Errorf("influxdb.organization is required with influxdb.token (2.x API)")
	case c.Token != "" && c.Bucket == "":
		return fmt.Errorf("influxdb.bucket is required with influxdb.token (2.x API)")
	case c.Token == "" && c.Database == "":
		return fmt.Errorf("influxdb.database is required without influxdb.token (1.x API)")
	}
	return nil
}

func init() {
	s := outputs.Define("influxdb", "influxdb", defaults,
		func(c *Config) bool { return c.HostPort != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "write events as InfluxDB points (1.x or 2.x API)"
	outputs.Register(s)
}

// InfluxDB is the output.
type InfluxDB struct {
	url       string
	headers   map[string]string
	precision time.Duration
	client    *httpout.Client
}

// New builds the output.
func New(c *Config, env outputs.Env) (*InfluxDB, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	client, err := env.HTTPClient(c.CheckCert, c.MutualTLS, nil)
	if err != nil {
		return nil, fmt.Errorf("influxdb: %w", err)
	}
	base := strings.TrimSuffix(c.HostPort, "/")
	headers := map[string]string{"Accept": "application/json"}
	q := url.Values{"precision": {c.Precision}}
	var path string
	if c.Token != "" {
		path = "/api/v2/write"
		q.Set("org", c.Organization)
		q.Set("bucket", c.Bucket)
		headers["Authorization"] = "Token " + c.Token
	} else {
		path = "/write"
		q.Set("db", c.Database)
		if c.User != "" || c.Password != "" {
			headers["Authorization"] = httpout.BasicAuth(c.User, c.Password)
		}
	}
	return &InfluxDB{url: base + path + "?" + q.Encode(), headers: headers, precision: precisions[c.Precision], client: client}, nil
}

// Name implements delivery.Output.
func (i *InfluxDB) Name() string { return "influxdb" }

// Line returns ev as one point of line protocol: measurement "events"; tags rule, priority,
// source, every output field (sorted, of any JSON type, null and empty ones left out),
// hostname and tags (joined by spaces); the output line as the string field "value"; the
// event's time at the configured precision. Tag values have their spaces turned into "_"
// as falcosidekick wrote them (so existing queries keep matching) and commas and equal signs
// escaped, which falcosidekick did not do (its points with them were refused).
func (i *InfluxDB) Line(ev *event.Event) []byte {
	b := make([]byte, 0, 512)
	b = append(b, "events"...)
	tag := func(k, v string) {
		if v == "" || v == "null" {
			return
		}
		b = append(b, ',')
		b = appendTagText(b, k)
		b = append(b, '=')
		b = appendTagText(b, strings.ReplaceAll(v, " ", "_"))
	}
	tag("rule", ev.Rule)
	tag("priority", ev.Priority.String())
	tag("source", ev.Source)
	for _, k := range chat.SortedKeys(ev.OutputFields) {
		if k == "rule" || k == "priority" || k == "source" || k == "hostname" || k == "tags" {
			continue // a field cannot take the name of the event's own tags
		}
		tag(k, chat.FieldValue(ev.OutputFields[k]))
	}
	tag("hostname", ev.Hostname)
	tag("tags", strings.Join(ev.Tags, " "))
	b = append(b, ` value="`...)
	b = append(b, fieldEscaper.Replace(ev.Output)...)
	b = append(b, `" `...)
	b = strconv.AppendInt(b, ev.Time.UnixNano()/int64(i.precision), 10)
	return b
}

// appendTagText appends a tag key or value in line protocol: commas, equal signs and spaces
// escaped, line breaks written as \n and \r. InfluxDB 1.x has no escape for a backslash in a
// tag, so one that would escape what follows it (a separator, or the end of the value) is
// written as "/"; other backslashes are kept.
func appendTagText(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ',', '=', ' ':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\\':
			if i+1 == len(s) || strings.IndexByte(",= \n\r", s[i+1]) >= 0 {
				c = '/'
			}
			b = append(b, c)
		default:
			b = append(b, c)
		}
	}
	return b
}

// fieldEscaper escapes a string field value: quotes and backslashes, and line breaks as \n
// and \r (line protocol cannot carry them raw).
var fieldEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`)

// Send writes one point; InfluxDB answers 204. A 400 (a point it cannot parse, a field type
// conflict) is permanent; 401/403 and a missing database or bucket (404) too.
func (i *InfluxDB) Send(ctx context.Context, ev *event.Event) error {
	if err := i.client.Send(ctx, httpout.Request{URL: i.url, ContentType: "text/plain; charset=utf-8",
		Headers: i.headers, Body: i.Line(ev)}); err != nil {
		return fmt.Errorf("influxdb: %w", err)
	}
	return nil
}
