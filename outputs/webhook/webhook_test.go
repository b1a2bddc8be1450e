package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

type received struct {
	method, contentType, body string
	header                    http.Header
}

func sink(t *testing.T, status int) (*httptest.Server, chan received) {
	t.Helper()
	got := make(chan received, 10)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- received{r.Method, r.Header.Get("Content-Type"), string(b), r.Header}
		w.WriteHeader(status)
	}))
	t.Cleanup(s.Close)
	return s, got
}

func testEvent() *event.Event {
	return &event.Event{UUID: "u1", Output: "out <b>", Priority: event.Critical, Rule: "r", Time: time.Unix(1, 0).UTC(),
		Source: "syscalls", OutputFields: map[string]any{"proc.name": "sh"}}
}

func TestSendsEventJSONWithMethodAndHeaders(t *testing.T) {
	for _, method := range []string{"POST", "put"} {
		s, got := sink(t, 200)
		c := defaults()
		c.Address = s.URL + "/falco"
		c.Method = method
		c.CustomHeaders = map[string]string{"Authorization": "Bearer t", "X-Org": "sec"}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		w, err := New(c, outputs.Env{})
		if err != nil {
			t.Fatal(err)
		}
		ev := testEvent()
		if err := w.Send(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.method != strings.ToUpper(method) || r.body != string(ev.JSON()) || !strings.HasPrefix(r.contentType, "application/json") ||
			r.header.Get("Authorization") != "Bearer t" || r.header.Get("X-Org") != "sec" {
			t.Errorf("%s: got %+v", method, r)
		}
		if w.Name() != "webhook" {
			t.Errorf("name %q", w.Name())
		}
	}
}

func TestErrorsClassified(t *testing.T) {
	for status, permanent := range map[int]bool{400: true, 500: false, 429: false} {
		s, _ := sink(t, status)
		c := defaults()
		c.Address = s.URL
		w, _ := New(c, outputs.Env{})
		err := w.Send(context.Background(), testEvent())
		if err == nil || delivery.IsPermanent(err) != permanent || !strings.HasPrefix(err.Error(), "webhook: ") {
			t.Errorf("%d: %v", status, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		addr, method, want string
	}{
		{"", "GET", ""},
		{"http://x", "POST", ""},
		{"ftp://x", "POST", "webhook.address must be an http:// or https:// URL"},
		{"http://x", "GET", `webhook.method must be POST or PUT, got "GET"`},
	} {
		cfg := defaults()
		cfg.Address, cfg.Method = c.addr, c.method
		err := cfg.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if d := defaults(); d.Method != "POST" || !d.CheckCert {
		t.Errorf("defaults %+v", d)
	}
}
