// Package teams posts each event to Microsoft Teams: as falcosidekick's MessageCard to a
// legacy Office 365 connector webhook (format messagecard, the default), or as an Adaptive
// Card 1.4 inside a message to a Teams Workflows webhook (format adaptivecard), which is
// what replaces connectors.
package teams

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
)

// DefaultActivityImage is falcosidekick's default card image.
const DefaultActivityImage = "https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick_color.png"

// Config is the teams.* section.
type Config struct {
	WebhookURL    string `koanf:"webhookurl" secret:"true" doc:"connector or Workflows webhook URL (it holds the credential); setting it enables the output"`
	ActivityImage string `koanf:"activityimage" doc:"image shown beside the card title; empty for none"`
	OutputFormat  string `koanf:"outputformat" doc:"all (output line and facts), text (output line only) or facts (facts only)"`
	Format        string `koanf:"format" doc:"messagecard (Office 365 connector, as falcosidekick) or adaptivecard (Adaptive Card 1.4 for Teams Workflows webhooks)"`
	CheckCert     bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS     bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config {
	return &Config{ActivityImage: DefaultActivityImage, OutputFormat: OutputAll, Format: FormatMessageCard, CheckCert: true}
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.WebhookURL == "" {
		return nil
	}
	if err := outputs.ValidateURL("teams.webhookurl", chat.SafeURL(c.WebhookURL)); err != nil {
		return err
	}
	switch c.OutputFormat {
	case OutputAll, OutputText, OutputFacts, "":
	default:
		return fmt.Errorf("teams.outputformat must be all, text or facts, got %q", c.OutputFormat)
	}
	switch c.Format {
	case FormatMessageCard, FormatAdaptiveCard, "":
	default:
		return fmt.Errorf("teams.format must be messagecard or adaptivecard, got %q", c.Format)
	}
	return nil
}

func init() {
	s := outputs.Define("teams", "teams", defaults,
		func(c *Config) bool { return c.WebhookURL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "post to Microsoft Teams: a MessageCard (connector webhook) or an Adaptive Card (Workflows webhook)"
	outputs.Register(s)
}

// Teams is the output.
type Teams struct {
	cfg    Config
	logURL string
	client *httpout.Client
}

// New builds the output.
func New(c *Config, env outputs.Env) (*Teams, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	client, err := env.HTTPClient(c.CheckCert, c.MutualTLS, nil)
	if err != nil {
		return nil, fmt.Errorf("teams: %w", err)
	}
	cfg := *c
	if cfg.OutputFormat == "" {
		cfg.OutputFormat = OutputAll
	}
	if cfg.Format == "" {
		cfg.Format = FormatMessageCard
	}
	return &Teams{cfg: cfg, logURL: chat.SafeURL(c.WebhookURL), client: client}, nil
}

// Name implements delivery.Output.
func (t *Teams) Name() string { return "teams" }

// Payload returns the card for ev in the configured format.
func (t *Teams) Payload(ev *event.Event) any {
	ev = outputs.TruncateLongFields(ev)
	if t.cfg.Format == FormatAdaptiveCard {
		return BuildAdaptiveCard(ev, t.cfg.OutputFormat, t.cfg.ActivityImage)
	}
	return BuildMessageCard(ev, t.cfg.OutputFormat, t.cfg.ActivityImage)
}

// Send posts one card. The webhook URL never appears in errors: it is the credential.
func (t *Teams) Send(ctx context.Context, ev *event.Event) error {
	body, err := chat.EncodeJSON(t.Payload(ev))
	if err != nil {
		return delivery.Permanent(fmt.Errorf("teams: encode card: %w", err))
	}
	resp, err := t.client.Do(ctx, httpout.Request{URL: t.cfg.WebhookURL, LogURL: t.logURL,
		ContentType: "application/json; charset=utf-8", Body: body})
	if err != nil {
		return fmt.Errorf("teams: %w", err)
	}
	if err := checkAnswer(resp, t.logURL); err != nil {
		return fmt.Errorf("teams: %w", err)
	}
	return nil
}

// connectorError matches the text legacy connectors answer with status 200 when the
// message was not delivered ("Microsoft Teams endpoint returned HTTP error 429 ...").
var connectorError = regexp.MustCompile(`HTTP error (\d{3})`)

// checkAnswer catches the failures connectors report inside a 200: a successful post
// answers "1" (connectors) or nothing (Workflows, 202).
func checkAnswer(resp *httpout.Response, logURL string) error {
	body := bytes.TrimSpace(resp.Body)
	if len(body) == 0 || string(body) == "1" {
		return nil
	}
	m := connectorError.FindSubmatch(body)
	if m == nil {
		return nil
	}
	status, _ := strconv.Atoi(string(m[1]))
	if status < 400 {
		return nil
	}
	snippet := body
	if len(snippet) > 256 {
		snippet = snippet[:256]
	}
	return httpout.StatusError(http.MethodPost, logURL, status, resp.Header, snippet)
}
