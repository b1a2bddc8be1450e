package teams

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
	"github.com/saker-dev/saker/outputs/internal/chattest"
)

func build(t *testing.T, mod func(*Config)) *Teams {
	t.Helper()
	c := defaults()
	c.WebhookURL = "http://127.0.0.1:1/webhookb2/SECRETPATH"
	mod(c)
	tm, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

var variants = map[string]func(*Config){
	"teams":                   func(*Config) {},
	"teams-facts":             func(c *Config) { c.OutputFormat = OutputFacts },
	"teams-text":              func(c *Config) { c.OutputFormat = OutputText },
	"teams-adaptivecard":      func(c *Config) { c.Format = FormatAdaptiveCard },
	"teams-adaptivecard-text": func(c *Config) { c.Format = FormatAdaptiveCard; c.OutputFormat = OutputText },
}

// TestSuppressedLineGolden: the first alert sent after a dedup window says, in every card
// and format, how many similar alerts the window suppressed.
func TestSuppressedLineGolden(t *testing.T) {
	ev := chattest.SuppressedEvent(t)
	for variant, mod := range variants {
		t.Run(variant, func(t *testing.T) {
			body, err := chat.EncodeJSON(build(t, mod).Payload(ev))
			if err != nil {
				t.Fatal(err)
			}
			chattest.CheckSuppressed(t, variant, string(body), body) // the line is in a text block or the section text
		})
	}
}

func TestPayloadGolden(t *testing.T) {
	evs := goldens.Events(t, nil)
	for variant, mod := range variants {
		tm := build(t, mod)
		for _, name := range goldens.Names(evs) {
			t.Run(variant+"/"+name, func(t *testing.T) {
				body, err := chat.EncodeJSON(tm.Payload(evs[name]))
				if err != nil {
					t.Fatal(err)
				}
				goldens.Check(t, filepath.Join("testdata", variant, name+".json"), goldens.IndentJSON(t, body))
				card := chattest.Decode(t, body)
				var problem string
				if tm.cfg.Format == FormatAdaptiveCard {
					problem = checkAdaptiveMessage(card)
				} else {
					problem = checkMessageCard(card)
					messageCardShape(t, chattest.Falcosidekick(t, variant, name), card)
				}
				if problem != "" {
					t.Errorf("schema: %s", problem)
				}
			})
		}
	}
}

// messageCardShape checks ours against falcosidekick's card: same type, summary, colour,
// subtitle, image and text, and every fact it sends with the same value in the same order.
// saker's title is the rule (falcosidekick's was the constant "Falcosidekick") and it adds
// the facts falcosidekick dropped (non-string fields, time).
func messageCardShape(t *testing.T, fsk, ours map[string]any) {
	t.Helper()
	for _, k := range []string{"@type", "summary", "themeColor"} {
		if ours[k] != fsk[k] {
			t.Errorf("%s = %v, falcosidekick sends %v", k, ours[k], fsk[k])
		}
	}
	fs, s := fsk["sections"].([]any)[0].(map[string]any), ours["sections"].([]any)[0].(map[string]any)
	for _, k := range []string{"activitySubtitle", "activityImage", "text"} {
		if fmt.Sprint(s[k]) != fmt.Sprint(fs[k]) && !(fs[k] == "" && s[k] == nil) {
			t.Errorf("section %s = %v, falcosidekick sends %v", k, s[k], fs[k])
		}
	}
	values := map[string]any{}
	var names, fnames []string
	for _, f := range asList(s["facts"]) {
		m := f.(map[string]any)
		values[m["name"].(string)] = m["value"]
		names = append(names, m["name"].(string))
	}
	for _, f := range asList(fs["facts"]) {
		m := f.(map[string]any)
		fnames = append(fnames, m["name"].(string))
		if values[m["name"].(string)] != m["value"] {
			t.Errorf("fact %v = %v, falcosidekick sends %v", m["name"], values[m["name"].(string)], m["value"])
		}
	}
	if !chattest.Subsequence(fnames, names) {
		t.Errorf("facts %v do not keep falcosidekick's order %v", names, fnames)
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

func TestAdaptiveCardContent(t *testing.T) {
	ev := goldens.Events(t, nil)["debug_special_chars"]
	body, _ := chat.EncodeJSON(build(t, variants["teams-adaptivecard"]).Payload(ev))
	s := string(body)
	for _, want := range []string{`"contentType":"application/vnd.microsoft.card.adaptive"`, `"version":"1.4"`,
		`"title":"proc.pid","value":"4242"`, `"title":"container.id","value":"null"`, `"text":"Special <chars> & \"quotes\" rule"`, `"style":"emphasis"`} {
		if !strings.Contains(s, want) {
			t.Errorf("adaptive card lacks %s:\n%s", want, s)
		}
	}
}

func startEndpoint(t *testing.T, e *endpoint) string {
	t.Helper()
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv.URL
}

func newOutput(t *testing.T, url, format string) *Teams {
	t.Helper()
	c := defaults()
	c.WebhookURL, c.Format = url, format
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tm, err := New(c, outputs.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// TestSendBothFormats posts every golden event in both formats to the strict endpoint.
func TestSendBothFormats(t *testing.T) {
	evs := goldens.Events(t, nil)
	for _, format := range []string{FormatMessageCard, FormatAdaptiveCard} {
		e := &endpoint{}
		tm := newOutput(t, startEndpoint(t, e)+"/webhookb2/SECRETPATH", format)
		for _, name := range goldens.Names(evs) {
			if err := tm.Send(context.Background(), evs[name]); err != nil {
				t.Fatalf("%s %s: %v", format, name, err)
			}
		}
		cards, problems := e.snapshot()
		if len(problems) > 0 || len(cards) != len(evs) {
			t.Fatalf("%s: %d accepted, problems %v", format, len(cards), problems)
		}
		b, _ := json.Marshal(cards)
		if !strings.Contains(string(b), "Write below binary dir") {
			t.Errorf("%s: the readme event's rule is not in what Teams received", format)
		}
	}
}

func TestAnswers(t *testing.T) {
	ev := goldens.Events(t, nil)["readme_try_event"]
	answerOnce := func(code int, body string) *endpoint {
		e := &endpoint{}
		e.answer = func(w http.ResponseWriter) bool {
			e.answer = nil
			w.WriteHeader(code)
			_, _ = io.WriteString(w, body)
			return true
		}
		return e
	}
	t.Run("connector 200 carrying a 429 is transient", func(t *testing.T) {
		e := answerOnce(200, "Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0")
		tm := newOutput(t, startEndpoint(t, e)+"/webhookb2/SECRETPATH", FormatMessageCard)
		err := tm.Send(context.Background(), ev)
		if err == nil || delivery.IsPermanent(err) || strings.Contains(err.Error(), "SECRETPATH") {
			t.Fatalf("want a transient error without the URL path, got %v", err)
		}
		if err := tm.Send(context.Background(), ev); err != nil {
			t.Fatalf("second attempt: %v", err)
		}
	})
	t.Run("400 is permanent", func(t *testing.T) {
		e := answerOnce(400, "Summary or Text is required.")
		tm := newOutput(t, startEndpoint(t, e)+"/workflows/x?sig=SECRETSIG", FormatAdaptiveCard)
		err := tm.Send(context.Background(), ev)
		if !delivery.IsPermanent(err) || strings.Contains(err.Error(), "SECRETSIG") {
			t.Fatalf("want a permanent error without the signature, got %v", err)
		}
	})
	t.Run("429 Retry-After", func(t *testing.T) {
		e := &endpoint{}
		e.answer = func(w http.ResponseWriter) bool {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		err := newOutput(t, startEndpoint(t, e)+"/w", FormatAdaptiveCard).Send(context.Background(), ev)
		if d, ok := delivery.RetryAfterHint(err); !ok || d != 3*time.Second {
			t.Fatalf("want a 3s Retry-After hint, got %v", err)
		}
	})
}

func TestValidate(t *testing.T) {
	for key, mod := range map[string]func(*Config){
		"teams.outputformat": func(c *Config) { c.OutputFormat = "all-of-it" },
		"teams.format":       func(c *Config) { c.Format = "hero" },
		"teams.webhookurl":   func(c *Config) { c.WebhookURL = "outlook.office.com/webhookb2/SECRETPATH" },
	} {
		c := defaults()
		c.WebhookURL = "https://example.webhook.office.com/webhookb2/SECRETPATH"
		mod(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SECRETPATH") {
			t.Errorf("Validate() = %v, want an error naming %s without the secret", err, key)
		}
	}
}

// TestDownThenUpLosesNothing: cards published while Teams is unreachable all arrive once
// the endpoint is up, through the engine's retries.
func TestDownThenUpLosesNothing(t *testing.T) {
	port := testpeers.FreePort(t)
	tm := newOutput(t, fmt.Sprintf("http://127.0.0.1:%d/workflows/run?sig=SECRET", port), FormatAdaptiveCard)
	eng := deliverytest.Start(t, tm, deliverytest.Policy(""))
	const n = 10
	for i := range n {
		ev := &event.Event{Rule: fmt.Sprintf("rule-%d", i), Priority: event.Notice, Output: fmt.Sprintf("event %d", i),
			Time: time.Now(), Source: "syscalls"}
		deliverytest.Publish(t, eng, ev)
	}
	e := &endpoint{}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	testpeers.Eventually(t, 20*time.Second, func() bool { c, _ := e.snapshot(); return len(c) >= n },
		"Teams did not receive all %d cards", n)
	eng.Stop(200 * time.Millisecond)
	cards, problems := e.snapshot()
	b, _ := json.Marshal(cards)
	for i := range n {
		if !strings.Contains(string(b), fmt.Sprintf(`"rule-%d"`, i)) {
			t.Errorf("rule-%d missing", i)
		}
	}
	if len(problems) > 0 {
		t.Errorf("schema problems: %v", problems)
	}
}

// TestMinimumPriority: teams.minimumpriority (the engine's Route) keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	e := &endpoint{}
	tm := newOutput(t, startEndpoint(t, e)+"/webhookb2/x", FormatMessageCard)
	eng := deliverytest.Start(t, tm, deliverytest.Policy("critical"))
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		routes := eng.Route(evs[name], "")
		if want := evs[name].Priority >= event.Critical; (len(routes) == 1) != want {
			t.Errorf("%s (%s): routed to %v", name, evs[name].Priority, routes)
		}
		if _, err := eng.Publish(context.Background(), evs[name], routes); err != nil {
			t.Fatal(err)
		}
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { c, _ := e.snapshot(); return len(c) >= 1 },
		"the Critical event did not arrive")
	eng.Stop(200 * time.Millisecond)
	cards, _ := e.snapshot()
	if len(cards) != 1 || cards[0]["themeColor"] != "ff9000" {
		t.Fatalf("want only the Critical card, got %v", cards)
	}
}
