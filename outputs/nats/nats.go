// Package nats publishes each event's Falco JSON to NATS, as falcosidekick's nats output does
// (same keys, same subject falco.<priority>.<rule>, same payload), over one long-lived
// connection; with nats.jetstream it publishes to JetStream and waits for the stream's ack,
// with the event uuid as Nats-Msg-Id so a retried publish is stored once.
package nats

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/tlsclient"
)

// DefaultSubjectTemplate is falcosidekick's subject.
const DefaultSubjectTemplate = "falco.<priority>.<rule>"

// Config is the nats.* section.
type Config struct {
	HostPort        string `koanf:"hostport" doc:"nats://host:port (a comma-separated list for a cluster); setting it enables the output"`
	SubjectTemplate string `koanf:"subjecttemplate" doc:"subject; <priority> (lower case) and <rule> (sanitised: lower case, runs of other characters than a-z0-9 become _) are replaced"`
	JetStream       bool   `koanf:"jetstream" doc:"publish to JetStream and wait for the stream's ack (Nats-Msg-Id = event uuid, deduplicated by the stream); a stream must cover the subject"`
	CredsFile       string `koanf:"credsfile" doc:"path to a .creds file (JWT + NKey seed); not with nkeyseedfile or jwtfile"`
	NkeySeedFile    string `koanf:"nkeyseedfile" doc:"path to an NKey seed file (alone: NKey auth; with jwtfile: JWT auth)"`
	JWTFile         string `koanf:"jwtfile" doc:"path to a user JWT file; requires nkeyseedfile"`
	Token           string `koanf:"token" secret:"true" doc:"authentication token"`
	User            string `koanf:"user" doc:"user name (with password)"`
	Password        string `koanf:"password" secret:"true" doc:"password (with user)"`
	MutualTLS       bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
	CheckCert       bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
}

func defaults() *Config {
	return &Config{SubjectTemplate: DefaultSubjectTemplate, CheckCert: true}
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.HostPort == "" {
		return nil
	}
	for _, s := range strings.Split(c.HostPort, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Host == "" || !validScheme[u.Scheme] {
			return fmt.Errorf("nats.hostport must be a comma-separated list of nats://host:port (or tls://, ws://, wss://) URLs, got %q", httpout.Redact(strings.TrimSpace(s)))
		}
	}
	tmpl := c.SubjectTemplate
	if tmpl == "" {
		tmpl = DefaultSubjectTemplate
	}
	if sample := expand(tmpl, "debug", "rule"); !ValidSubject(sample) {
		return fmt.Errorf("nats.subjecttemplate %q does not give a valid subject to publish to (got %q: tokens separated by single dots, no spaces, no * or > wildcards)", c.SubjectTemplate, sample)
	}
	switch {
	case c.CredsFile != "" && (c.NkeySeedFile != "" || c.JWTFile != ""):
		return errors.New("nats.credsfile cannot be combined with nats.nkeyseedfile or nats.jwtfile")
	case c.JWTFile != "" && c.NkeySeedFile == "":
		return errors.New("nats.jwtfile requires nats.nkeyseedfile")
	case c.Password != "" && c.User == "":
		return errors.New("nats.password requires nats.user")
	}
	return nil
}

var validScheme = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}

func init() {
	s := outputs.Define("nats", "nats", defaults,
		func(c *Config) bool { return c.HostPort != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "publish the event's Falco JSON to NATS (core or JetStream) on falco.<priority>.<rule>"
	outputs.Register(s)
}

// NATS is the output. It keeps one connection for its lifetime; nats.go reconnects it.
type NATS struct {
	cfg  Config
	nc   *natsgo.Conn
	js   jetstream.JetStream
	tmpl string
}

// reconnectWait is the pause between reconnection attempts to the same server.
const reconnectWait = time.Second

// New connects to the servers. A server that is down at start-up is not an error: the
// connection keeps retrying in the background and Send fails (transiently) until it is up.
func New(c *Config, env outputs.Env) (*NATS, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts, err := connectOptions(c, env)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	servers := strings.Join(splitTrim(c.HostPort), ",")
	nc, err := natsgo.Connect(servers, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect to %s: %w", redactList(c.HostPort), err)
	}
	n := &NATS{cfg: *c, nc: nc, tmpl: c.SubjectTemplate}
	if n.tmpl == "" {
		n.tmpl = DefaultSubjectTemplate
	}
	if c.JetStream {
		if n.js, err = jetstream.New(nc); err != nil {
			nc.Close()
			return nil, fmt.Errorf("nats: jetstream: %w", err)
		}
	}
	return n, nil
}

// connectOptions maps the configuration onto nats.go options. ReconnectBufSize(-1) makes a
// publish during a disconnection fail at once instead of being buffered in memory, so the
// delivery engine (bounded queue, retry, dead letter) stays the only buffer.
func connectOptions(c *Config, env outputs.Env) ([]natsgo.Option, error) {
	log := env.Log
	opts := []natsgo.Option{
		natsgo.Name("saker"),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(reconnectWait),
		natsgo.RetryOnFailedConnect(true),
		natsgo.ReconnectBufSize(-1),
		natsgo.Timeout(5 * time.Second),
	}
	if log != nil {
		opts = append(opts,
			natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
				if err != nil {
					log.Warn("nats disconnected", "output", "nats", "err", err)
				}
			}),
			natsgo.ReconnectHandler(func(nc *natsgo.Conn) {
				log.Info("nats reconnected", "output", "nats", "server", httpout.Redact(nc.ConnectedUrl()))
			}),
			natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
				log.Warn("nats error", "output", "nats", "err", err)
			}))
	}
	switch {
	case c.CredsFile != "":
		opts = append(opts, natsgo.UserCredentials(c.CredsFile))
	case c.JWTFile != "":
		opts = append(opts, natsgo.UserCredentials(c.JWTFile, c.NkeySeedFile))
	case c.NkeySeedFile != "":
		o, err := natsgo.NkeyOptionFromSeed(c.NkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkeyseedfile %s: %w", c.NkeySeedFile, err)
		}
		opts = append(opts, o)
	}
	if c.Token != "" {
		opts = append(opts, natsgo.Token(c.Token))
	}
	if c.User != "" {
		opts = append(opts, natsgo.UserInfo(c.User, c.Password))
	}
	if tlsCfg, err := tlsConfig(c, env); err != nil {
		return nil, err
	} else if tlsCfg != nil {
		opts = append(opts, natsgo.Secure(tlsCfg))
	}
	return opts, nil
}

// tlsConfig returns the TLS settings when TLS is asked for (a tls:// or wss:// URL, mutual
// TLS, a custom CA or checkcert=false); nil lets nats.go follow the server's INFO.
func tlsConfig(c *Config, env outputs.Env) (*tls.Config, error) {
	hp := strings.ToLower(c.HostPort)
	wanted := c.MutualTLS || !c.CheckCert || env.TLS.CACertFile != "" ||
		strings.Contains(hp, "tls://") || strings.Contains(hp, "wss://")
	if !wanted {
		return nil, nil
	}
	// nats.go sets ServerName per server when it is empty.
	return tlsclient.Config("", c.CheckCert, c.MutualTLS, env.TLS)
}

// Name implements delivery.Output.
func (n *NATS) Name() string { return "nats" }

// Subject is where ev is published.
func (n *NATS) Subject(ev *event.Event) string {
	return expand(n.tmpl, strings.ToLower(ev.Priority.String()), SanitizeRule(ev.Rule))
}

// Send publishes the event JSON. In core mode it flushes (a PING/PONG round trip) so that a
// nil error means the server has the message; in JetStream mode it waits for the stream ack.
func (n *NATS) Send(ctx context.Context, ev *event.Event) error {
	subject := n.Subject(ev)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if n.js != nil {
		var opts []jetstream.PublishOpt
		if ev.UUID != "" {
			opts = append(opts, jetstream.WithMsgID(ev.UUID))
		}
		if _, err := n.js.Publish(ctx, subject, ev.JSON(), opts...); err != nil {
			return classify(fmt.Errorf("nats: jetstream publish to %s: %w", subject, n.explain(err)))
		}
		return nil
	}
	if err := n.nc.Publish(subject, ev.JSON()); err != nil {
		return classify(fmt.Errorf("nats: publish to %s: %w", subject, n.explain(err)))
	}
	if err := n.nc.FlushWithContext(ctx); err != nil {
		return classify(fmt.Errorf("nats: flush after publishing to %s: %w", subject, n.explain(err)))
	}
	return nil
}

// explain adds the connection's state to an error caused by a disconnection.
func (n *NATS) explain(err error) error {
	if errors.Is(err, natsgo.ErrReconnectBufExceeded) || !n.nc.IsConnected() {
		if last := n.nc.LastError(); last != nil {
			return fmt.Errorf("not connected (%s; last error: %v): %w", n.nc.Status(), last, err)
		}
		return fmt.Errorf("not connected (%s): %w", n.nc.Status(), err)
	}
	return err
}

// classify marks the errors a retry cannot fix as permanent; everything else (disconnected,
// timeout, no stream yet, stream full) is transient.
func classify(err error) error {
	if errors.Is(err, natsgo.ErrMaxPayload) || errors.Is(err, natsgo.ErrBadSubject) {
		return delivery.Permanent(err)
	}
	var api *jetstream.APIError
	if errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum {
		return delivery.Permanent(err)
	}
	return err
}

// Close flushes and closes the connection.
func (n *NATS) Close() error {
	if n.nc.IsConnected() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = n.nc.FlushWithContext(ctx)
	}
	n.nc.Close()
	return nil
}

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

// SanitizeRule turns a rule name into one subject token as falcosidekick does: lower case,
// every run of characters other than a-z and 0-9 replaced by "_", leading and trailing "_"
// trimmed. A rule with no such character at all (falcosidekick would publish to an invalid
// subject ending in ".") becomes "unknown".
func SanitizeRule(rule string) string {
	s := strings.Trim(slugRE.ReplaceAllString(strings.ToLower(rule), "_"), "_")
	if s == "" {
		return "unknown"
	}
	return s
}

func expand(tmpl, priority, rule string) string {
	return strings.NewReplacer("<priority>", priority, "<rule>", rule).Replace(tmpl)
}

// ValidSubject reports whether s can be published to: non-empty dot-separated tokens
// without whitespace or wildcards.
func ValidSubject(s string) bool {
	if s == "" {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
		if strings.ContainsAny(tok, " \t\r\n\f\v\x00") {
			return false
		}
	}
	return true
}

func splitTrim(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func redactList(list string) string {
	parts := splitTrim(list)
	for i, p := range parts {
		parts[i] = httpout.Redact(p)
	}
	return strings.Join(parts, ",")
}
