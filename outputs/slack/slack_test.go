package slack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	goslack "github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/slack"
)

// hookPath is an incoming-webhook path; its last segment plays the secret token.
const hookPath = "/services/T0000/B0000/TOKENSECRET"

// webhook is an incoming-webhook handler mounted on slacktest's server. It checks each body
// strictly against slack-go's WebhookMessage (unknown keys refused, as Slack answers
// invalid_payload) and records what it accepted. script lists answers to give first.
type webhook struct {
	mu       sync.Mutex
	received []goslack.WebhookMessage
	problems []string
	script   []func(w http.ResponseWriter) bool
}

var hexColor = regexp.MustCompile(`^#[0-9a-f]{6}$`)

func (h *webhook) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.script) > 0 {
		step := h.script[0]
		h.script = h.script[1:]
		if step(w) {
			return
		}
	}
	if problem := h.check(r); problem != "" {
		h.problems = append(h.problems, problem)
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

func (h *webhook) check(r *http.Request) string {
	if r.Method != http.MethodPost || r.URL.Path != hookPath {
		return fmt.Sprintf("%s %s", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return "content type " + ct
	}
	body, _ := io.ReadAll(r.Body)
	if bytes.Contains(body, []byte(`\u003c`)) {
		return "HTML-escaped JSON"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var msg goslack.WebhookMessage
	if err := dec.Decode(&msg); err != nil {
		return "decode: " + err.Error()
	}
	if len(msg.Attachments) != 1 {
		return fmt.Sprintf("%d attachments", len(msg.Attachments))
	}
	a := msg.Attachments[0]
	if !hexColor.MatchString(a.Color) || a.Fallback == "" || a.Text == "" {
		return fmt.Sprintf("attachment color %q fallback %q text %q", a.Color, a.Fallback, a.Text)
	}
	for _, f := range a.Fields {
		if f.Title == "" {
			return "field without title"
		}
	}
	h.received = append(h.received, msg)
	return ""
}

func (h *webhook) snapshot() ([]goslack.WebhookMessage, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]goslack.WebhookMessage(nil), h.received...), append([]string(nil), h.problems...)
}

// startSlack starts slack-go's test server with the webhook handler.
func startSlack(t *testing.T, h *webhook) *slacktest.Server {
	t.Helper()
	s := slacktest.NewTestServer(func(c slacktest.Customize) { c.Handle("/services/", h.serve) })
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func newOutput(t testing.TB, webhookURL string) *slack.Output {
	t.Helper()
	c := slack.DefaultsForTest()
	c.WebhookURL = webhookURL
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	o, err := slack.New(slack.SlackFlavor, c.Common, slack.Format{Footer: c.Footer}, outputs.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestSendToSlacktest(t *testing.T) {
	h := &webhook{}
	s := startSlack(t, h)
	o := newOutput(t, strings.TrimSuffix(s.GetAPIURL(), "/")+hookPath)
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		if err := o.Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("send %s: %v", name, err)
		}
	}
	got, problems := h.snapshot()
	if len(problems) > 0 {
		t.Fatalf("the webhook refused payloads: %v", problems)
	}
	if len(got) != len(evs) {
		t.Fatalf("received %d messages, sent %d", len(got), len(evs))
	}
	readme := evs["readme_try_event"]
	var found bool
	for _, m := range got {
		a := m.Attachments[0]
		if a.Fields[0].Value == readme.Rule {
			found = a.Color == "#e20b0b" && m.Username == "Falcosidekick" && a.Footer != ""
		}
	}
	if !found {
		t.Errorf("the Error event did not arrive with its rule, red colour, username and footer: %+v", got)
	}
}

func TestSlackAnswers(t *testing.T) {
	ev := goldens.Events(t, nil)["readme_try_event"]
	t.Run("429 honours Retry-After", func(t *testing.T) {
		h := &webhook{script: []func(http.ResponseWriter) bool{func(w http.ResponseWriter) bool {
			w.Header().Set("Retry-After", "7")
			http.Error(w, "rate_limited", http.StatusTooManyRequests)
			return true
		}}}
		s := startSlack(t, h)
		o := newOutput(t, strings.TrimSuffix(s.GetAPIURL(), "/")+hookPath)
		err := o.Send(context.Background(), ev)
		if d, ok := delivery.RetryAfterHint(err); !ok || d != 7*time.Second || delivery.IsPermanent(err) {
			t.Fatalf("want a transient error asking for 7s, got %v (hint %v %v)", err, d, ok)
		}
		if strings.Contains(err.Error(), "TOKENSECRET") {
			t.Errorf("error leaks the webhook token: %v", err)
		}
		if err := o.Send(context.Background(), ev); err != nil {
			t.Fatalf("second attempt: %v", err)
		}
	})
	t.Run("404 no_service is permanent", func(t *testing.T) {
		h := &webhook{script: []func(http.ResponseWriter) bool{func(w http.ResponseWriter) bool {
			http.Error(w, "no_service", http.StatusNotFound)
			return true
		}}}
		s := startSlack(t, h)
		o := newOutput(t, strings.TrimSuffix(s.GetAPIURL(), "/")+hookPath)
		err := o.Send(context.Background(), ev)
		if !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "no_service") {
			t.Fatalf("want a permanent error quoting no_service, got %v", err)
		}
		if strings.Contains(err.Error(), "TOKENSECRET") {
			t.Errorf("error leaks the webhook token: %v", err)
		}
	})
	t.Run("connection refused is transient and secret-free", func(t *testing.T) {
		o := newOutput(t, fmt.Sprintf("http://127.0.0.1:%d%s", testpeers.FreePort(t), hookPath))
		err := o.Send(context.Background(), ev)
		if err == nil || delivery.IsPermanent(err) || strings.Contains(err.Error(), "TOKENSECRET") {
			t.Fatalf("want a transient error without the token, got %v", err)
		}
	})
}

// TestDownThenUpLosesNothing: events published while Slack is unreachable all arrive once
// it is back, through the engine's retries.
func TestDownThenUpLosesNothing(t *testing.T) {
	// Slack (slacktest, on a port of its own) runs from the start, behind a proxy on the
	// port the output is configured with, which comes up later. Taking the free port after
	// slacktest took its own keeps the two from landing on the same port.
	h := &webhook{}
	s := startSlack(t, h)
	port := testpeers.FreePort(t)
	o := newOutput(t, fmt.Sprintf("http://127.0.0.1:%d%s", port, hookPath))
	eng := deliverytest.Start(t, o, deliverytest.Policy(""))
	const n = 10
	for i := range n {
		ev := &event.Event{UUID: fmt.Sprint(i), Rule: fmt.Sprintf("rule %d", i), Priority: event.Warning,
			Output: fmt.Sprintf("event %d", i), Time: time.Now(), Source: "syscalls"}
		deliverytest.Publish(t, eng, ev)
	}
	// Bring Slack up on the port the output was configured with.
	target, _ := url.Parse(s.GetAPIURL())
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	testpeers.Eventually(t, 20*time.Second, func() bool {
		got, _ := h.snapshot()
		return len(got) >= n
	}, "Slack did not receive all %d events", n)
	eng.Stop(200 * time.Millisecond) // everything arrived; Stop only releases the workers
	got, problems := h.snapshot()
	seen := map[string]bool{}
	for _, m := range got {
		seen[m.Attachments[0].Fields[0].Value] = true
	}
	if len(seen) != n || len(problems) > 0 {
		t.Errorf("received %d distinct rules of %d (problems %v)", len(seen), n, problems)
	}
}

// TestMinimumPriority: slack.minimumpriority (the engine's Route) keeps lower events out.
func TestMinimumPriority(t *testing.T) {
	h := &webhook{}
	s := startSlack(t, h)
	o := newOutput(t, strings.TrimSuffix(s.GetAPIURL(), "/")+hookPath)
	eng := deliverytest.Start(t, o, deliverytest.Policy("error"))
	evs := goldens.Events(t, nil)
	for _, name := range goldens.Names(evs) {
		routes := eng.Route(evs[name], "")
		if want := evs[name].Priority >= event.Error; (len(routes) == 1) != want {
			t.Errorf("%s (%s): routed to %v", name, evs[name].Priority, routes)
		}
		if _, err := eng.Publish(context.Background(), evs[name], routes); err != nil {
			t.Fatal(err)
		}
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { got, _ := h.snapshot(); return len(got) >= 2 },
		"the Error and Critical events did not arrive")
	eng.Stop(200 * time.Millisecond) // lower events were never queued: nothing else can arrive
	got, _ := h.snapshot()
	var rules []string
	for _, m := range got {
		rules = append(rules, m.Attachments[0].Fields[0].Value+"/"+m.Attachments[0].Fields[1].Value)
	}
	// Of the 8 events, readme_try_event (Error) and k8s_audit_critical (Critical) pass.
	if len(got) != 2 {
		t.Fatalf("minimumpriority=error let through %v", rules)
	}
	for _, r := range rules {
		if !strings.HasSuffix(r, "/Error") && !strings.HasSuffix(r, "/Critical") {
			t.Errorf("event below error delivered: %s", r)
		}
	}
}
