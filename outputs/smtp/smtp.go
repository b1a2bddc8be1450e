// Package smtp mails each event, as falcosidekick's smtp output does (same keys, subject
// "[<priority>] <output>", a plain-text part and an HTML table), over SMTP connections that
// are kept open and reused from one event to the next instead of one connection per event.
package smtp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// DefaultSubjectTemplate is falcosidekick's subject.
const DefaultSubjectTemplate = "[{{.Priority}}] {{.Output}}"

// Config is the smtp.* section.
type Config struct {
	HostPort        string   `koanf:"hostport" doc:"SMTP server host:port; setting it enables the output"`
	TLS             bool     `koanf:"tls" doc:"true: implicit TLS on port 465, STARTTLS (required) on any other port; false: plain text"`
	AuthMechanism   string   `koanf:"authmechanism" doc:"none, plain, login, oauthbearer, external or anonymous (plain/login without a user: no authentication)"`
	User            string   `koanf:"user" doc:"user name for plain, login and oauthbearer"`
	Password        string   `koanf:"password" secret:"true" doc:"password for plain and login"`
	Token           string   `koanf:"token" secret:"true" doc:"OAuth bearer token for oauthbearer"`
	Identity        string   `koanf:"identity" doc:"authorization identity for plain and external"`
	Trace           string   `koanf:"trace" doc:"trace information for anonymous"`
	From            string   `koanf:"from" doc:"sender address (\"Falco <falco@example.com>\" or falco@example.com)"`
	To              []string `koanf:"to" doc:"recipient addresses (env: comma-separated)"`
	OutputFormat    string   `koanf:"outputformat" doc:"html (a text part and an HTML part) or text"`
	SubjectTemplate string   `koanf:"subjecttemplate" doc:"Go template of the subject over the event (.Priority .Output .Rule .Source .Hostname .Tags .Time .OutputFields .UUID)"`
	CheckCert       bool     `koanf:"checkcert" doc:"verify the server's TLS certificate"`
}

func defaults() *Config {
	return &Config{TLS: true, AuthMechanism: "plain", OutputFormat: "html",
		SubjectTemplate: DefaultSubjectTemplate, CheckCert: true}
}

var mechanisms = map[string]bool{"none": true, "plain": true, "login": true, "oauthbearer": true, "external": true, "anonymous": true}

// settings are the parsed, checked values of a Config.
type settings struct {
	host string
	port int
	from string   // envelope sender
	to   []string // envelope recipients
}

// Validate names the key at fault. It does not change c.
func (c *Config) Validate() error {
	_, err := c.parse()
	return err
}

// parse checks every key and returns the values New needs.
func (c *Config) parse() (settings, error) {
	var s settings
	if c.HostPort == "" {
		return s, nil
	}
	host, port, err := net.SplitHostPort(c.HostPort)
	if err != nil || host == "" {
		return s, fmt.Errorf("smtp.hostport must be host:port, got %q", c.HostPort)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return s, fmt.Errorf("smtp.hostport port must be a number from 1 to 65535, got %q", port)
	}
	s.host, s.port = host, n
	if c.From == "" {
		return s, errors.New("smtp.from must be set when smtp.hostport is")
	}
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return s, fmt.Errorf("smtp.from %q is not an email address: %v", c.From, err)
	}
	s.from = from.Address
	to := recipients(c.To)
	if len(to) == 0 {
		return s, errors.New("smtp.to must list at least one recipient when smtp.hostport is set")
	}
	for _, a := range to {
		addr, err := mail.ParseAddress(a)
		if err != nil {
			return s, fmt.Errorf("smtp.to %q is not an email address: %v", a, err)
		}
		s.to = append(s.to, addr.Address)
	}
	return s, c.checkRest()
}

// checkRest checks the keys parse does not turn into settings.
func (c *Config) checkRest() error {
	if m := strings.ToLower(c.AuthMechanism); m != "" && !mechanisms[m] {
		return fmt.Errorf("smtp.authmechanism must be none, plain, login, oauthbearer, external or anonymous, got %q", c.AuthMechanism)
	}
	if strings.EqualFold(c.AuthMechanism, "oauthbearer") && c.Token == "" {
		return errors.New("smtp.token must be set when smtp.authmechanism is oauthbearer")
	}
	if f := strings.ToLower(c.OutputFormat); f != "" && f != "html" && f != "text" {
		return fmt.Errorf("smtp.outputformat must be html or text, got %q", c.OutputFormat)
	}
	if _, err := parseSubject(c.SubjectTemplate); err != nil {
		return fmt.Errorf("smtp.subjecttemplate: %v", err)
	}
	return nil
}

// recipients splits list entries on commas too, so that both a YAML list and falcosidekick's
// "a@x,b@y" string work.
func recipients(list []string) []string {
	var out []string
	for _, item := range list {
		for _, a := range strings.Split(item, ",") {
			if a = strings.TrimSpace(a); a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}

func parseSubject(tmpl string) (*texttemplate.Template, error) {
	if tmpl == "" {
		tmpl = DefaultSubjectTemplate
	}
	t, err := texttemplate.New("subject").Parse(tmpl)
	if err != nil {
		return nil, err
	}
	// Execute once on a sample so that a template naming an unknown field fails at start-up.
	sample := &event.Event{Priority: event.Warning, Rule: "r", Output: "o", Time: time.Unix(0, 0).UTC(),
		OutputFields: map[string]any{}}
	if err := t.Execute(new(strings.Builder), sample); err != nil {
		return nil, err
	}
	return t, nil
}

func init() {
	s := outputs.Define("smtp", "smtp", defaults,
		func(c *Config) bool { return c.HostPort != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "mail each event (plain text + HTML table) through an SMTP server, reusing connections"
	outputs.Register(s)
}

// SMTP is the output.
type SMTP struct {
	cfg    Config
	msg    *composer
	from   string   // envelope sender
	to     []string // envelope recipients
	pool   *pool
	dialer *dialer
}

// New builds the output; it connects on the first event, not here, so a mail server that is
// down at start-up only delays delivery.
func New(c *Config, env outputs.Env) (*SMTP, error) {
	set, err := c.parse()
	if err != nil {
		return nil, err
	}
	if set.host == "" {
		return nil, errors.New("smtp.hostport is empty")
	}
	comp, err := newComposer(c)
	if err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	d, err := newDialer(c, set, env)
	if err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	s := &SMTP{cfg: *c, msg: comp, from: set.from, to: set.to, dialer: d}
	size := env.Policy.MaxConcurrentRequests
	if size <= 0 {
		size = 4
	}
	s.pool = newPool(size)
	return s, nil
}

// Name implements delivery.Output.
func (s *SMTP) Name() string { return "smtp" }

// Send mails one event over a pooled connection: a connection is taken (or dialled), used for
// one transaction, and put back when it is still healthy.
func (s *SMTP) Send(ctx context.Context, ev *event.Event) error {
	body, err := s.msg.compose(ev)
	if err != nil {
		return delivery.Permanent(fmt.Errorf("smtp: compose message: %w", err))
	}
	conn, err := s.pool.get(ctx, s.dialer)
	if err != nil {
		return classify(fmt.Errorf("smtp: connect to %s: %w", s.cfg.HostPort, err))
	}
	err = conn.send(ctx, s.from, s.to, body)
	if err != nil {
		s.pool.discardOrReset(conn, err)
		return classify(fmt.Errorf("smtp: send to %s via %s: %w", strings.Join(s.to, ","), s.cfg.HostPort, err))
	}
	s.pool.put(conn)
	return nil
}

// Close quits every idle connection.
func (s *SMTP) Close() error {
	s.pool.close()
	return nil
}

// classify maps SMTP replies onto the engine's errors: 5xx is permanent (a rejected sender,
// recipient, message or credentials), 4xx and network errors are transient.
func classify(err error) error {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 && se.Code < 600 {
		return delivery.Permanent(err)
	}
	if errors.Is(err, errNoStartTLS) {
		return delivery.Permanent(err)
	}
	return err
}

// saslClient returns the authentication for the configured mechanism; nil for none.
func saslClient(c *Config, host string, port int) sasl.Client {
	switch strings.ToLower(c.AuthMechanism) {
	case "plain":
		if c.User != "" {
			return sasl.NewPlainClient(c.Identity, c.User, c.Password)
		}
	case "login":
		if c.User != "" {
			return sasl.NewLoginClient(c.User, c.Password)
		}
	case "oauthbearer":
		return sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: c.User, Token: c.Token, Host: host, Port: port})
	case "external":
		return sasl.NewExternalClient(c.Identity)
	case "anonymous":
		return sasl.NewAnonymousClient(c.Trace)
	}
	return nil
}
