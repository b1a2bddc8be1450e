package aws

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/testpeers"
)

func newTestLambda(t *testing.T, endpoint string, mutate func(*Config)) *Lambda {
	t.Helper()
	c := emulatorConfig(endpoint)
	c.Lambda.FunctionName = "function" // the only name aws-lambda-rie serves
	if mutate != nil {
		mutate(c)
	}
	l, err := NewLambda(c, testEnv())
	if err != nil {
		t.Fatalf("NewLambda: %v", err)
	}
	return l
}

// lambdaPolicy: aws-lambda-rie runs one invocation at a time and answers 400 to a second
// concurrent one, so the tests invoke it from one worker.
func lambdaPolicy() delivery.Policy {
	p := delivery.DefaultPolicy()
	p.MaxConcurrentRequests = 1
	p.Retry.Initial, p.Retry.Max = 20*time.Millisecond, 200*time.Millisecond
	return p
}

// TestLambdaRIE invokes lambda-recorder under aws-lambda-rie, with both invocation types,
// and reads back the payloads the function received: the event's Falco JSON.
func TestLambdaRIE(t *testing.T) {
	rie := startLambda(t, 0, "", "")
	sync := newTestLambda(t, rie.URL, nil)
	async := newTestLambda(t, rie.URL, func(c *Config) { c.Lambda.InvocationType = "event"; c.Lambda.LogType = "None" })
	evs := []*event.Event{testEvent("lambda <1>", event.Error), testEvent("lambda-2", event.Notice)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sync.Send(ctx, evs[0]); err != nil {
		t.Fatalf("Send RequestResponse: %v", err)
	}
	if err := async.Send(ctx, evs[1]); err != nil {
		t.Fatalf("Send Event: %v", err)
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(rie.payloads(t)) >= 2 }, "function received %d of 2 payloads", len(rie.payloads(t)))
	got := rie.payloads(t)
	for i, ev := range evs {
		if got[i]["rule"] != ev.Rule || got[i]["uuid"] != ev.UUID || got[i]["output"] != ev.Output {
			t.Errorf("payload %d = %v, want event %s", i, got[i], ev.JSON())
		}
	}
}

// TestLambdaFunctionErrorFails: a function that fails is a failed (retryable) delivery, both
// when Lambda flags it (X-Amz-Function-Error) and when an emulator only returns the error
// document (aws-lambda-rie).
func TestLambdaFunctionErrorFails(t *testing.T) {
	rie := startLambda(t, 0, "", "FAIL-ME")
	l := newTestLambda(t, rie.URL, nil)
	err := l.Send(context.Background(), testEvent("FAIL-ME please", event.Error))
	if err == nil || !strings.Contains(err.Error(), "function error") || !strings.Contains(err.Error(), "failing on purpose") {
		t.Fatalf("Send to a failing function = %v, want a function error with its message", err)
	}
	if delivery.IsPermanent(err) {
		t.Errorf("function error marked permanent: %v", err)
	}
	if err := l.Send(context.Background(), testEvent("fine", event.Error)); err != nil {
		t.Fatalf("Send after a function error: %v", err)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Invocation-Type") != "RequestResponse" || r.Header.Get("X-Amz-Log-Type") != "Tail" {
			t.Errorf("invocation headers = %v", r.Header)
		}
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"rule":"flagged"`) {
			t.Errorf("payload = %s", body)
		}
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		w.Header().Set("X-Amz-Log-Result", "bG9nIHRhaWw=")
		io.WriteString(w, `{"errorMessage":"boom","errorType":"Runtime.ExitError","extra":1}`)
	}))
	defer srv.Close()
	fl := newTestLambda(t, srv.URL, nil)
	err = fl.Send(context.Background(), testEvent("flagged", event.Error))
	if err == nil || !strings.Contains(err.Error(), "Unhandled") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Send with X-Amz-Function-Error = %v, want a function error", err)
	}
}

func TestIsErrorDocument(t *testing.T) {
	for payload, want := range map[string]bool{
		`{"errorMessage":"x","errorType":"y"}`:                  true,
		` {"errorMessage":"x","errorType":"y","stackTrace":[]}`: true,
		`{"errorMessage":"x"}`:                                  false,
		`{"errorMessage":"x","errorType":"y","result":"ok"}`:    false,
		`{"recorded":12}`:                                       false,
		`null`:                                                  false,
		``:                                                      false,
		`"errorMessage"`:                                        false,
	} {
		if got := isErrorDocument([]byte(payload)); got != want {
			t.Errorf("isErrorDocument(%s) = %v, want %v", payload, got, want)
		}
	}
}

// TestLambdaPeerDownThenUp: invocations while the RIE is down all land once it is up.
func TestLambdaPeerDownThenUp(t *testing.T) {
	port := testpeers.FreePort(t)
	record := filepath.Join(t.TempDir(), "late.jsonl")
	l := newTestLambda(t, fmt.Sprintf("http://127.0.0.1:%d", port), nil)
	eng := deliverytest.Start(t, l, lambdaPolicy())
	const n = 6
	for i := range n {
		if _, err := eng.Publish(context.Background(), testEvent(fmt.Sprintf("lambda-late-%d", i), event.Error), []string{nameLambda}); err != nil {
			t.Fatal(err)
		}
	}
	rie := startLambda(t, port, record, "")
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(rie.payloads(t)) >= n },
		"function received %d of %d payloads", len(rie.payloads(t)), n)
	if lost := eng.Stop(2 * time.Second); lost != 0 {
		t.Errorf("%d events lost", lost)
	}
	seen := map[any]bool{}
	for _, p := range rie.payloads(t) {
		seen[p["rule"]] = true
	}
	for i := range n {
		if r := fmt.Sprintf("lambda-late-%d", i); !seen[r] {
			t.Errorf("%s never arrived", r)
		}
	}
}

// TestLambdaMinimumPriority routes through the engine with aws.lambda.minimumpriority=warning.
func TestLambdaMinimumPriority(t *testing.T) {
	rie := startLambda(t, 0, "", "")
	l := newTestLambda(t, rie.URL, nil)
	p := lambdaPolicy()
	p.MinimumPriority = "warning"
	eng := deliverytest.Start(t, l, p)
	for _, ev := range []*event.Event{testEvent("quiet", event.Notice), testEvent("loud", event.Warning)} {
		deliverytest.Publish(t, eng, ev)
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(rie.payloads(t)) >= 1 }, "warning not delivered")
	eng.Stop(2 * time.Second)
	if got := rie.payloads(t); len(got) != 1 || got[0]["rule"] != "loud" {
		t.Fatalf("payloads = %v, want only the warning", got)
	}
}
