// Package telegram sends each event to a Telegram chat through the Bot API's sendMessage, as
// a MarkdownV2 message laid out as falcosidekick's Telegram output does: the priority and
// rule in bold, then the time, source, hostname, tags, output fields and the output line.
package telegram

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// DefaultHost is the Bot API's address.
const DefaultHost = "https://api.telegram.org"

// Config is the telegram.* section.
type Config struct {
	Token     string `koanf:"token" secret:"true" doc:"bot token from @BotFather (123456:ABC-...); with chatid, setting it enables the output"`
	ChatID    string `koanf:"chatid" doc:"chat to post to: a numeric id (groups and channels are negative, -100...) or @channelusername"`
	Host      string `koanf:"host" doc:"Bot API address, for a local Bot API server or a proxy"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{Host: DefaultHost, CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Token == "" && c.ChatID == "" {
		return nil
	}
	switch {
	case c.Token == "":
		return fmt.Errorf("telegram.token is required with telegram.chatid")
	case c.ChatID == "":
		return fmt.Errorf("telegram.chatid is required with telegram.token")
	case strings.ContainsAny(c.Token, "/?#% "):
		return fmt.Errorf("telegram.token is not a bot token (it holds a URL character)")
	}
	return outputs.ValidateURL("telegram.host", c.Host)
}

func init() {
	s := outputs.Define("telegram", "telegram", defaults,
		func(c *Config) bool { return c.Token != "" || c.ChatID != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "send a message to a Telegram chat with a bot"
	outputs.Register(s)
}

// Telegram is the output: falcopost's, with the message Build makes.
type Telegram struct {
	*falcopost.Output
	chatID string
}

// New builds the output. A 429 says in its body how long to wait (parameters.retry_after),
// which the engine honours; the token never appears in errors.
func New(c *Config, env outputs.Env) (*Telegram, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	t := &Telegram{chatID: c.ChatID}
	host := strings.TrimSuffix(c.Host, "/")
	var err error
	t.Output, err = falcopost.New(falcopost.Options{Name: "telegram", URL: host + "/bot" + c.Token + "/sendMessage",
		LogURL: httpout.Redact(host) + "/botREDACTED/sendMessage", CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		RetryAfter: retryAfter, Body: func(ev *event.Event) ([]byte, error) { return chat.EncodeJSON(t.Build(ev)) }}, env)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Message is sendMessage's body.
type Message struct {
	ChatID                string `json:"chat_id"`
	Text                  string `json:"text"`
	ParseMode             string `json:"parse_mode"`
	DisableWebPagePreview bool   `json:"disable_web_page_preview"`
}

// Telegram refuses a message longer than 4,096 characters once its entities are parsed;
// saker keeps the text it sends under that, escaped, so the count never depends on parsing.
const (
	maxText       = 4096
	maxValueChars = 512 // of one output field, before escaping
)

// Build returns the message for ev: every character MarkdownV2 reserves is escaped in the
// event's text (falcosidekick's escaping is kept where it was right), every output field is
// listed whatever its JSON type, and fields that do not fit the message limit give way to a
// line saying how many were left out.
func (t *Telegram) Build(ev *event.Event) Message {
	ev = outputs.TruncateLongFields(ev)
	var b strings.Builder
	fmt.Fprintf(&b, "*\\[Falco\\] \\[%s\\] %s*\n\n", ev.Priority, escape(ev.Rule))
	fmt.Fprintf(&b, "• *Time*: %s\n• *Source*: %s\n• *Hostname*: %s\n• *Tags*: %s\n• *Fields*:\n",
		escape(chat.TimeText(ev.Time)), escape(ev.Source), escape(ev.Hostname), escape(strings.Join(ev.Tags, " ")))
	tail := "\n*Output*: " + escape(chat.Cut(ev.Output, 1024)) + "\n"
	if line := chat.Suppressed(ev); line != "" { // after a dedup window
		tail += escape(line) + "\n"
	}
	keys := chat.SortedKeys(ev.OutputFields)
	for i, k := range keys {
		line := fmt.Sprintf("\t  • *%s*: %s\n", escape(k), escape(chat.Cut(chat.FieldValue(ev.OutputFields[k]), maxValueChars)))
		more := fmt.Sprintf("\t  • _%d more fields not shown_\n", len(keys)-i)
		if utf8.RuneCountInString(b.String())+utf8.RuneCountInString(line)+len(more)+utf8.RuneCountInString(tail) > maxText {
			b.WriteString(more)
			break
		}
		b.WriteString(line)
	}
	b.WriteString(tail)
	return Message{ChatID: t.chatID, Text: b.String(), ParseMode: "MarkdownV2", DisableWebPagePreview: true}
}

// escape backslash-escapes the characters MarkdownV2 reserves outside entities
// (https://core.telegram.org/bots/api#markdownv2-style).
func escape(s string) string {
	if !strings.ContainsAny(s, markdownV2Reserved) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(markdownV2Reserved, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

const markdownV2Reserved = "_*[]()~`>#+-=|{}.!\\"

// retryAfter reads the Bot API's {"parameters": {"retry_after": seconds}}.
func retryAfter(body []byte) (time.Duration, bool) {
	var answer struct {
		Parameters struct {
			RetryAfter int `json:"retry_after"`
		} `json:"parameters"`
	}
	if json.Unmarshal(body, &answer) != nil || answer.Parameters.RetryAfter <= 0 {
		return 0, false
	}
	return time.Duration(answer.Parameters.RetryAfter) * time.Second, true
}
