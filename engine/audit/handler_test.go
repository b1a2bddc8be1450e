package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/rules"
)

// testRules alert on every event, naming its verb.
const testRules = `
- rule: Any
  desc: any audit event
  condition: ka.verb exists
  output: verb=%ka.verb id=%ka.auditid
  priority: NOTICE
  source: k8s_audit
`

func testEngine(t *testing.T) *rules.Engine {
	t.Helper()
	e, _, err := rules.Load(NewSource(), []rules.File{{Name: "test.yaml", Data: []byte(testRules)}},
		rules.Options{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func post(t *testing.T, h http.Handler, method, ctype, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "/k8s-audit", strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerStatuses(t *testing.T) {
	e := testEngine(t)
	big := `{"kind":"Event","auditID":"big","verb":"get","stageTimestamp":"2018-10-25T14:09:12Z","x":"` + strings.Repeat("x", 300) + `"}`
	for _, c := range []struct {
		name, method, ctype, body string
		status                    int
		bodyHas                   string
		alerts                    string // auditIDs submitted
	}{
		{"event", "POST", "application/json", evA, 200, `"alerts":1`, "a"},
		{"event list", "POST", "application/json; charset=utf-8", `{"kind":"EventList","items":[` + evA + `,` + evB + `]}`, 200, `"events":2`, "a b"},
		{"array", "POST", "application/json", `[` + evB + `,` + evA + `]`, 200, `"alerts":2`, "b a"},
		{"bad items are skipped, not the batch", "POST", "application/json",
			`{"kind":"EventList","items":[` + evA + `,{"kind":"Event"},` + big + `,"x",` + evB + `]}`, 200, `"skipped":3`, "a b"},
		{"GET", "GET", "application/json", "", 405, "method GET not allowed", ""},
		{"content type", "POST", "text/plain", evA, 400, "not application/json", ""},
		{"no content type", "POST", "", evA, 400, "not application/json", ""},
		{"not json", "POST", "application/json", "this is not json", 400, "offset 0", ""},
		{"truncated json", "POST", "application/json", `{"kind":"EventList","items":[` + evA, 400, "offset", ""},
		{"not an audit event", "POST", "application/json", `{"kind": 0}`, 400, "not recognized as a k8s audit event", ""},
		{"too large", "POST", "application/json", `[` + strings.Repeat(evA+",", 30) + evA + `]`, 413, "maxbatchsize", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			col := &collector{}
			h := NewHandler(e, col, Limits{MaxBatchSize: 2000, MaxEventSize: 256}, nil)
			rec := post(t, h, c.method, c.ctype, c.body)
			if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.bodyHas) {
				t.Fatalf("status %d body %q, want %d with %q", rec.Code, rec.Body, c.status, c.bodyHas)
			}
			if c.status == 405 && rec.Header().Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", rec.Header().Get("Allow"))
			}
			var ids []string
			for _, a := range col.alerts {
				ids = append(ids, strings.TrimPrefix(strings.Fields(a.Output)[3], "id="))
				if a.Received.IsZero() || a.Source != "k8s_audit" || a.Rule != "Any" {
					t.Errorf("alert %+v: want Received set, source k8s_audit, rule Any", a)
				}
			}
			if got := strings.Join(ids, " "); got != c.alerts {
				t.Errorf("alerts for %q, want %q", got, c.alerts)
			}
		})
	}
}

func TestHandlerChunkedTooLarge(t *testing.T) {
	h := NewHandler(testEngine(t), &collector{}, Limits{MaxBatchSize: 100}, nil)
	// No Content-Length: the cap applies while reading.
	req := httptest.NewRequest("POST", "/k8s-audit", io.MultiReader(strings.NewReader(`[`+evA), strings.NewReader(`,`+evB+`]`)))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", rec.Code)
	}
}

func TestHandlerBackPressure(t *testing.T) {
	full := errors.New("queue full")
	n := 0
	h := NewHandler(testEngine(t), SubmitFunc(func(context.Context, *event.Event) error {
		n++
		return full
	}), Limits{}, nil)
	rec := post(t, h, "POST", "application/json", `[`+evA+`,`+evB+`]`)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" ||
		!strings.Contains(rec.Body.String(), "queue full") {
		t.Fatalf("status %d Retry-After %q body %q, want 503, 1 and the error", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if n != 1 {
		t.Errorf("Submit called %d times, want the batch to stop at the first refusal", n)
	}
	if got := h.Stats().Snapshot().Unavailable; got != 1 {
		t.Errorf("payloads counted unavailable: %d, want 1", got)
	}
}

func TestHandlerStats(t *testing.T) {
	h := NewHandler(testEngine(t), &collector{}, Limits{MaxEventSize: 256}, nil)
	post(t, h, "POST", "application/json", `{"kind":"EventList","items":[`+evA+`,{"kind":"Event"},`+evB+`]}`)
	post(t, h, "POST", "application/json", `not json`)
	post(t, h, "POST", "application/json", `{"kind":"Pod"}`)
	post(t, h, "POST", "text/plain", evA)
	s := h.Stats().Snapshot()
	want := StatsSnapshot{Received: 2, Alerts: 2, Payloads: 3, Rejected: 3,
		Skipped: map[string]uint64{"malformed": 1, "not_audit_event": 1, "bad_timestamp": 1, "oversize": 0}}
	gotJSON, _ := json.Marshal(s)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("stats %s, want %s", gotJSON, wantJSON)
	}
}

// TestHandlerConcurrent posts from several goroutines; run with -race.
func TestHandlerConcurrent(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(NewHandler(testEngine(t), col, Limits{}, nil))
	defer srv.Close()
	body := `{"kind":"EventList","items":[` + evA + `,` + evB + `]}`
	done := make(chan error)
	for g := 0; g < 8; g++ {
		go func() {
			var err error
			for i := 0; i < 20 && err == nil; i++ {
				var resp *http.Response
				if resp, err = http.Post(srv.URL, "application/json", strings.NewReader(body)); err == nil {
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = errors.New(resp.Status)
					}
				}
			}
			done <- err
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	counts := map[string]int{}
	for _, a := range col.alerts {
		counts[a.Output[strings.Index(a.Output, "verb="):]]++
	}
	if counts["verb=create id=a"] != 160 || counts["verb=delete id=b"] != 160 {
		t.Fatalf("alerts by output %v, want 160 of each", counts)
	}
}
