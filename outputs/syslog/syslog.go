// Package syslog sends each event to a syslog server as an RFC 5424 message, over UDP, TCP or
// TLS: the event's Falco JSON, or a CEF record, as the message, at the severity of its
// priority.
package syslog

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/engine/tcpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
)

// Config is the syslog.* section.
type Config struct {
	Host      string `koanf:"host" doc:"syslog server host name or IP; setting it enables the output"`
	Port      string `koanf:"port" doc:"syslog server port (514 for udp and tcp, 6514 for tls when empty)"`
	Protocol  string `koanf:"protocol" doc:"tcp, udp or tls (RFC 5425)"`
	Format    string `koanf:"format" doc:"json (the event's Falco JSON) or cef (ArcSight Common Event Format)"`
	Facility  string `koanf:"facility" doc:"syslog facility: kern, user, daemon, auth, local0 ... local7"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate (tls)"`
	MutualTLS bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*) (tls)"`
}

func defaults() *Config {
	return &Config{Protocol: "tcp", Format: "json", Facility: "local0", CheckCert: true}
}

var facilities = map[string]int{"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
	"news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Host == "" {
		return nil
	}
	switch c.Protocol {
	case "tcp", "udp", "tls":
	default:
		return fmt.Errorf("syslog.protocol must be tcp, udp or tls, got %q", c.Protocol)
	}
	switch c.Format {
	case "json", "cef":
	default:
		return fmt.Errorf("syslog.format must be json or cef, got %q", c.Format)
	}
	if _, ok := facilities[c.Facility]; !ok {
		return fmt.Errorf("syslog.facility must be a syslog facility name (kern, user, daemon, auth, local0 ... local7), got %q", c.Facility)
	}
	if c.Port != "" {
		if p, err := strconv.Atoi(c.Port); err != nil || p <= 0 || p > 65535 {
			return fmt.Errorf("syslog.port must be a port number, got %q", c.Port)
		}
	}
	return nil
}

func init() {
	s := outputs.Define("syslog", "syslog", defaults,
		func(c *Config) bool { return c.Host != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "send RFC 5424 syslog messages (JSON or CEF) over udp, tcp or tls"
	// Messages on one connection stay in order; more workers would only wait for it.
	s.Concurrency = 1
	outputs.Register(s)
}

// Syslog is the output.
type Syslog struct {
	cfg      Config
	facility int
	stream   *tcpout.Client // tcp and tls
	addr     string         // udp
	hostname string         // of this machine, for events without one
}

// New builds the output.
func New(c *Config, env outputs.Env) (*Syslog, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	port := c.Port
	if port == "" {
		port = "514"
		if c.Protocol == "tls" {
			port = "6514"
		}
	}
	s := &Syslog{cfg: *c, facility: facilities[c.Facility], addr: net.JoinHostPort(c.Host, port)}
	s.hostname, _ = os.Hostname()
	switch c.Protocol {
	case "tcp":
		s.stream = tcpout.New(s.addr, nil)
	case "tls":
		tlsCfg, err := httpout.ClientTLS(c.CheckCert, c.MutualTLS, env.TLS)
		if err != nil {
			return nil, fmt.Errorf("syslog: %w", err)
		}
		tlsCfg.ServerName = c.Host
		s.stream = tcpout.New(s.addr, tlsCfg)
	}
	return s, nil
}

// Name implements delivery.Output.
func (s *Syslog) Name() string { return "syslog" }

// severities are syslog's, by Falco priority (the same eight levels).
var severities = map[event.Priority]int{
	event.Emergency: 0, event.Alert: 1, event.Critical: 2, event.Error: 3,
	event.Warning: 4, event.Notice: 5, event.Informational: 6, event.Debug: 7,
}

// Message returns the RFC 5424 message for ev, without framing:
// <PRI>1 TIMESTAMP HOSTNAME falco - falco - MSG. The timestamp is the event's, to the
// microsecond (RFC 5424's limit); the hostname is the event's (where Falco saw it).
func (s *Syslog) Message(ev *event.Event) []byte {
	host := ev.Hostname
	if host == "" {
		host = s.hostname
	}
	b := make([]byte, 0, 512)
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(s.facility*8+severities[ev.Priority]), 10)
	b = append(b, ">1 "...)
	b = ev.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = append(b, headerField(host, 255)...)
	b = append(b, " falco - falco - "...)
	if s.cfg.Format == "cef" {
		return append(b, CEF(ev)...)
	}
	return append(b, ev.JSON()...)
}

// headerField makes s a valid RFC 5424 header field: printable US-ASCII without spaces, at
// most n characters, "-" when empty.
func headerField(s string, n int) string {
	f := strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, s)
	if f == "" {
		return "-"
	}
	return f[:min(len(f), n)]
}

// cefSeverities rank Falco priorities on CEF's 0-10 scale.
var cefSeverities = map[event.Priority]int{
	event.Emergency: 10, event.Alert: 9, event.Critical: 8, event.Error: 7,
	event.Warning: 6, event.Notice: 4, event.Informational: 3, event.Debug: 0,
}

// CEF returns ev as a CEF record with falcosidekick's fields, escaped as the format requires
// (falcosidekick did not escape): "|" and "\" in header fields, "=" and "\" in extension
// values, and line breaks everywhere as \n and \r.
func CEF(ev *event.Event) string {
	var fields []string
	for _, k := range chat.SortedKeys(ev.OutputFields) {
		fields = append(fields, k+":"+chat.FieldValue(ev.OutputFields[k]))
	}
	var b strings.Builder
	b.WriteString("CEF:0|Falcosecurity|Falco|1.0|Falco Event|")
	b.WriteString(cefHeader.Replace(ev.Rule))
	fmt.Fprintf(&b, "|%d|", cefSeverities[ev.Priority])
	ext := [][2]string{{"uuid", ev.UUID}, {"start", ev.Time.UTC().Format(time.RFC3339Nano)}, {"msg", ev.Output},
		{"source", ev.Source}, {"hostname", ev.Hostname}, {"outputfields", strings.Join(fields, " ")},
		{"tags", strings.Join(ev.Tags, ",")}}
	for i, kv := range ext {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[0] + "=" + cefValue.Replace(kv[1]))
	}
	return b.String()
}

var (
	cefHeader = strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\n", `\n`, "\r", `\r`)
	cefValue  = strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\n", `\n`, "\r", `\r`)
)

// Send sends one message: a datagram over UDP, a line (RFC 6587 non-transparent framing: the
// message then LF, JSON and CEF holding no raw line break) over TCP and TLS.
func (s *Syslog) Send(ctx context.Context, ev *event.Event) error {
	msg := s.Message(ev)
	if s.stream != nil {
		if err := s.stream.Write(ctx, append(msg, '\n')); err != nil {
			return fmt.Errorf("syslog: %w", err)
		}
		return nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", s.addr)
	if err != nil {
		return fmt.Errorf("syslog: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write(msg); err != nil {
		return fmt.Errorf("syslog: send to %s: %w", s.addr, err)
	}
	return nil
}

// Close closes the stream connection.
func (s *Syslog) Close() error {
	if s.stream != nil {
		return s.stream.Close()
	}
	return nil
}
