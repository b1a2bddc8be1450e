// Package logstash writes each event's Falco JSON as one line to a Logstash tcp input
// (json_lines codec), over TCP or TLS, as falcosidekick does.
package logstash

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/engine/tcpout"
	"github.com/saker-dev/saker/outputs"
)

// Config is the logstash.* section.
type Config struct {
	Address    string   `koanf:"address" doc:"Logstash host name or IP; setting it enables the output"`
	Port       int      `koanf:"port" doc:"port of the Logstash tcp input"`
	TLS        bool     `koanf:"tls" doc:"connect with TLS (the tcp input's ssl_enabled)"`
	MutualTLS  bool     `koanf:"mutualtls" doc:"present a client certificate (certfile/keyfile, else mutualtlsclient.*)"`
	CheckCert  bool     `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	CertFile   string   `koanf:"certfile" doc:"client certificate for mutual TLS, instead of mutualtlsclient.certfile"`
	KeyFile    string   `koanf:"keyfile" doc:"client key for mutual TLS, instead of mutualtlsclient.keyfile"`
	CACertFile string   `koanf:"cacertfile" doc:"CA of the server's certificate, instead of tlsclient.cacertfile"`
	Tags       []string `koanf:"tags" doc:"tags added to the event's own (env: \"a,b\")"`
}

func defaults() *Config { return &Config{Port: 5044, CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Address == "" {
		return nil
	}
	if c.Port <= 0 || c.Port > 65535 {
		return fmt.Errorf("logstash.port must be between 1 and 65535, got %d", c.Port)
	}
	return nil
}

func init() {
	s := outputs.Define("logstash", "logstash", defaults,
		func(c *Config) bool { return c.Address != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "write JSON lines to a Logstash tcp input"
	// One connection carries the lines in order; more workers would only wait for it.
	s.Concurrency = 1
	outputs.Register(s)
}

// Logstash is the output.
type Logstash struct {
	tags []string
	conn *tcpout.Client
}

// New builds the output.
func New(c *Config, env outputs.Env) (*Logstash, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(c.Address, strconv.Itoa(c.Port))
	var l Logstash
	l.tags = c.Tags
	if !c.TLS {
		l.conn = tcpout.New(addr, nil)
		return &l, nil
	}
	files := env.TLS
	for dst, src := range map[*string]string{&files.CertFile: c.CertFile, &files.KeyFile: c.KeyFile, &files.CACertFile: c.CACertFile} {
		if src != "" {
			*dst = src
		}
	}
	tlsCfg, err := httpout.ClientTLS(c.CheckCert, c.MutualTLS, files)
	if err != nil {
		return nil, fmt.Errorf("logstash: %w", err)
	}
	tlsCfg.ServerName = c.Address
	l.conn = tcpout.New(addr, tlsCfg)
	return &l, nil
}

// Name implements delivery.Output.
func (l *Logstash) Name() string { return "logstash" }

// Line returns what is written for ev: its Falco JSON, with the configured tags added, and
// a newline.
func (l *Logstash) Line(ev *event.Event) []byte {
	if len(l.tags) > 0 {
		tagged := ev.Clone()
		for _, t := range l.tags {
			if !slices.Contains(tagged.Tags, t) {
				tagged.Tags = append(tagged.Tags, t)
			}
		}
		ev = tagged
	}
	return append(append([]byte(nil), ev.JSON()...), '\n')
}

// Send writes one line.
func (l *Logstash) Send(ctx context.Context, ev *event.Event) error {
	if err := l.conn.Write(ctx, l.Line(ev)); err != nil {
		return fmt.Errorf("logstash: %w", err)
	}
	return nil
}

// Close closes the connection.
func (l *Logstash) Close() error { return l.conn.Close() }
