package telegram

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs/internal/chattest"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

const token = "123:abc"

func newOutput(t *testing.T, host string) *Telegram {
	t.Helper()
	return chattest.Output(t, defaults, New, func(c *Config) { c.Token, c.ChatID, c.Host = token, "-100123", host })
}

// TestSuppressedLineGolden: the first alert sent after a dedup window says, escaped, how
// many similar alerts the window suppressed.
func TestSuppressedLineGolden(t *testing.T) {
	m := newOutput(t, DefaultHost).Build(chattest.SuppressedEvent(t))
	chattest.CheckSuppressed(t, "", m.Text, m)
}

// TestPayloadGolden checks each message against saker's golden file and against what
// falcosidekick sent: the same keys, chat and parse mode, and its title, time, source,
// hostname and field lines (where its escaping was right, that is unchanged).
func TestPayloadGolden(t *testing.T) {
	o := newOutput(t, DefaultHost)
	chattest.Payloads(t, chattest.Golden{Variants: map[string]chattest.Build{
		"telegram": func(ev *event.Event) (any, error) { return o.Build(ev), nil },
	}, Compare: func(t *testing.T, c chattest.Case) {
		ours, fsk := c.Ours, c.Falcosidekick
		for k, v := range fsk {
			if k != "text" && ours[k] != v {
				t.Errorf("%s = %v, falcosidekick sends %v", k, ours[k], v)
			}
		}
		if err := checkMarkdownV2(ours["text"].(string)); err != nil {
			t.Error(err)
		}
		for _, line := range strings.Split(fsk["text"].(string), "\n") {
			switch {
			case strings.Contains(line, "<") || strings.Contains(line, "*Tags*") || strings.Contains(line, "**Output**"),
				strings.Contains(line, ": \\["): // lists are JSON here, as in every chat output
				continue
			case strings.HasSuffix(line, `: <nil\>`):
				line = strings.TrimSuffix(line, `<nil\>`) + "null"
			}
			if !strings.Contains(ours["text"].(string), line) {
				t.Errorf("falcosidekick's line %q is missing", line)
			}
		}
	}})
}

// checkMarkdownV2 parses text as Telegram does, enough to refuse what it refuses: a reserved
// character outside an escape, an entity left open.
func checkMarkdownV2(text string) error {
	open := map[rune]bool{}
	escaped := false
	for i, r := range text {
		switch {
		case escaped:
			escaped = false
		case r == '\\':
			escaped = true
		case r == '*' || r == '_':
			open[r] = !open[r]
		case strings.ContainsRune("[]()~`>#+-=|{}.!", r):
			return fmt.Errorf("unescaped %q at byte %d of %q", r, i, text)
		}
	}
	for r, o := range open {
		if o {
			return fmt.Errorf("entity %q left open in %q", r, text)
		}
	}
	if n := utf8.RuneCountInString(text); n > maxText {
		return fmt.Errorf("%d characters", n)
	}
	return nil
}

// TestHostileTextIsEscaped: whatever an event holds, the message parses.
func TestHostileTextIsEscaped(t *testing.T) {
	fields := map[string]any{}
	for i := range 200 {
		fields[fmt.Sprintf("f_%03d*[x](y)", i)] = strings.Repeat(`\_*[]()~`+"`"+`>#+-=|{}.!`, 40)
	}
	ev := &event.Event{Output: "a*b_c [d](e) `f` \\", Priority: event.Warning, Rule: "r_1*", Time: time.Now(),
		Source: "s.x", Hostname: "h-1", Tags: []string{"t.1"}, OutputFields: fields}
	m := newOutput(t, DefaultHost).Build(ev)
	if err := checkMarkdownV2(m.Text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, "more fields not shown") || !strings.HasSuffix(m.Text, "\n*Output*: a\\*b\\_c \\[d\\]\\(e\\) \\`f\\` \\\\\n") {
		t.Errorf("text ends %q", m.Text[len(m.Text)-120:])
	}
}

// endpoint is the Bot API's sendMessage as strict as Telegram: the token in the path, known
// fields only, text that parses as MarkdownV2; it answers {"ok": true, ...}.
type endpoint struct {
	mu        sync.Mutex
	floodWait int // answer 429 with parameters.retry_after while > 0
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path != "/bot"+token+"/sendMessage" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"ok":false,"error_code":401,"description":"Unauthorized"}`))
		return
	}
	e.mu.Lock()
	flood := e.floodWait
	e.mu.Unlock()
	if flood > 0 {
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = fmt.Fprintf(w, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after %d","parameters":{"retry_after":%d}}`, flood, flood)
		return
	}
	var m Message
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || m.ChatID != "-100123" || m.ParseMode != "MarkdownV2" || checkMarkdownV2(m.Text) != nil {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"ok":false,"error_code":400,"description":"Bad Request: can't parse entities"}`))
		return
	}
	_, _ = w.Write([]byte(`{"ok":true,"result":{"message_id":1}}`))
}

func TestSendToStrictEndpoint(t *testing.T) {
	e := &endpoint{}
	srv := posttest.Server(t, e)
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		if err := newOutput(t, srv.URL).Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	revoked := chattest.Output(t, defaults, New, func(c *Config) { c.Token, c.ChatID, c.Host = "999:REVOKEDTOKEN", "-100123", srv.URL })
	err := revoked.Send(context.Background(), evs["readme_try_event"])
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "REVOKEDTOKEN") {
		t.Fatalf("want a permanent error without the token, got %v", err)
	}
	e.mu.Lock()
	e.floodWait = 7
	e.mu.Unlock()
	err = newOutput(t, srv.URL).Send(context.Background(), evs["readme_try_event"])
	if d, ok := delivery.RetryAfterHint(err); !ok || d != 7*time.Second {
		t.Fatalf("want the 7s flood wait as a hint, got %v", err)
	}
}

// TestDelivery: messages published while Telegram is unreachable all arrive once it is up,
// through the engine's retries, and telegram.minimumpriority keeps lower events out.
func TestDelivery(t *testing.T) {
	posttest.Delivery(t, func(t *testing.T, base string) delivery.Sender { return newOutput(t, base) }, &endpoint{})
}

func TestValidate(t *testing.T) {
	posttest.Refuses(t, func() *Config {
		c := defaults()
		c.Token, c.ChatID = "1:SECRET", "-1"
		return c
	}, map[string]func(*Config){
		"telegram.chatid is required": func(c *Config) { c.ChatID = "" },
		"telegram.token is required":  func(c *Config) { c.Token = "" },
		"telegram.token is not":       func(c *Config) { c.Token = "1:SECRET/../x" },
		"telegram.host":               func(c *Config) { c.Host = "api.telegram.org" },
	})
}
