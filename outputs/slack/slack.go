// Package slack posts each event to a Slack incoming webhook as falcosidekick does: one
// attachment coloured by priority, with the output line, the rule, priority, source,
// hostname, tags and output fields, and a footer. Mattermost and Rocket.Chat take the same
// payload; their packages reuse this one's builder and Output with their own Flavor.
package slack

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
)

// Defaults shared with falcosidekick, so an existing channel looks the same after the switch.
const (
	DefaultUsername = "Falcosidekick"
	DefaultIcon     = "https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick_color.png"
	DefaultFooter   = "https://github.com/falcosecurity/falcosidekick"
)

// Common holds the keys every Slack-compatible output has; each output's Config embeds it
// with `koanf:",squash"` so the keys sit directly under the output's section.
type Common struct {
	WebhookURL    string `koanf:"webhookurl" secret:"true" doc:"incoming webhook URL (it holds the token); setting it enables the output"`
	Username      string `koanf:"username" doc:"name the message is posted under"`
	Icon          string `koanf:"icon" doc:"avatar URL of the message"`
	OutputFormat  string `koanf:"outputformat" doc:"all (output line and fields), text (output line only) or fields (fields only)"`
	MessageFormat string `koanf:"messageformat" doc:"Go template for a text line above the attachment, e.g. 'Alert: rule *{{ .Rule }}* by {{ index .OutputFields \"user.name\" }}'"`
	CheckCert     bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS     bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

// CommonDefaults returns falcosidekick's defaults for the shared keys.
func CommonDefaults() Common {
	return Common{Username: DefaultUsername, Icon: DefaultIcon, OutputFormat: FormatAll, CheckCert: true}
}

// Check validates the shared keys, naming them under section ("mattermost.outputformat").
func (c *Common) Check(section string) error {
	if c.WebhookURL == "" {
		return nil
	}
	return chat.CheckWebhook(section, c.WebhookURL, c.OutputFormat, c.MessageFormat, FormatAll, FormatText, FormatFields)
}

// Config is the slack.* section.
type Config struct {
	Common  `koanf:",squash"`
	Channel string `koanf:"channel" doc:"channel to post to instead of the webhook's own"`
	Footer  string `koanf:"footer" doc:"attachment footer (all and fields formats)"`
}

func defaults() *Config {
	return &Config{Common: CommonDefaults(), Footer: DefaultFooter}
}

// Validate names the key at fault.
func (c *Config) Validate() error { return c.Check("slack") }

// SlackFlavor is Slack's spec: event text is escaped for Slack's markup.
var SlackFlavor = Flavor{Name: "slack", EscapeMarkup: true}

func init() {
	s := outputs.Define("slack", "slack", defaults,
		func(c *Config) bool { return c.WebhookURL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) {
			return New(SlackFlavor, c.Common, Format{Channel: c.Channel, Footer: c.Footer}, env)
		})
	s.Doc = "post to a Slack incoming webhook: an attachment coloured by priority with the event's fields"
	outputs.Register(s)
}

// Output posts Slack-compatible webhook messages.
type Output struct {
	flavor Flavor
	format Format
	url    string
	logURL string
	client *httpout.Client
	log    *slog.Logger
}

// New builds an output of the given flavor. format carries the flavor-specific keys
// (channel, footer); the shared ones come from c.
func New(f Flavor, c Common, format Format, env outputs.Env) (*Output, error) {
	tmpl, err := chat.ParseTemplate(f.Name+".messageformat", c.MessageFormat)
	if err != nil {
		return nil, err
	}
	format.Username, format.Icon, format.OutputFormat, format.MessageFormat = c.Username, c.Icon, c.OutputFormat, tmpl
	client, err := env.HTTPClient(c.CheckCert, c.MutualTLS, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return &Output{flavor: f, format: format, url: c.WebhookURL, logURL: chat.SafeURL(c.WebhookURL),
		client: client, log: env.Logger()}, nil
}

// Name implements delivery.Output.
func (o *Output) Name() string { return o.flavor.Name }

// Payload returns the JSON body for ev. A messageformat that fails to execute is logged and
// the message goes out without its text line: the alert itself is not lost.
func (o *Output) Payload(ev *event.Event) ([]byte, error) {
	ev = outputs.TruncateLongFields(ev)
	msg, terr := Build(o.flavor, o.format, ev)
	if terr != nil {
		o.log.Warn("messageformat failed, sending the message without its text line", "rule", ev.Rule, "err", terr)
	}
	body, err := chat.EncodeJSON(msg)
	if err != nil {
		return nil, fmt.Errorf("%s: encode message: %w", o.flavor.Name, err)
	}
	return body, nil
}

// Send posts one event. The webhook URL never appears in errors: it is the credential.
func (o *Output) Send(ctx context.Context, ev *event.Event) error {
	body, err := o.Payload(ev)
	if err != nil {
		return delivery.Permanent(err)
	}
	resp, err := o.client.Do(ctx, httpout.Request{URL: o.url, LogURL: o.logURL,
		ContentType: "application/json; charset=utf-8", Body: body})
	if err != nil {
		return fmt.Errorf("%s: %w", o.flavor.Name, err)
	}
	if o.flavor.CheckAnswer != nil {
		if err := o.flavor.CheckAnswer(resp.Body); err != nil {
			return fmt.Errorf("%s: POST %s: %w", o.flavor.Name, o.logURL, err)
		}
	}
	return nil
}
