package gcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

const testFunction = "projects/saker-test/locations/europe-west1/functions/falco-handler"

// googleError answers as Google's APIs do: {"error":{"code","message","status"}}.
func googleError(w http.ResponseWriter, code int, status, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"status":%q}}`, code, msg, status)
}

// checkBearer is Google's front end: a request without the token the test's token endpoint
// issued last gets 401 UNAUTHENTICATED. ts nil: the endpoint is an emulator without auth.
func checkBearer(w http.ResponseWriter, r *http.Request, ts *tokenServer) bool {
	if ts == nil {
		return true
	}
	if got := r.Header.Get("Authorization"); ts.token() == "" || got != "Bearer "+ts.token() {
		googleError(w, http.StatusUnauthorized, "UNAUTHENTICATED",
			"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
		return false
	}
	return true
}

// functionsEndpoint is the Cloud Functions v1 API's functions.call for one function, as
// strict as the API: POST to /v1/{name}:call with a token, a JSON body holding only "data",
// a string, here a Falco event. It answers an execution ID, or the function's error when
// failing is set.
type functionsAPI struct {
	ts      *tokenServer
	failing atomic.Bool
	calls   atomic.Int32
}

func (f *functionsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !checkBearer(w, r, f.ts) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/"+testFunction+":call" {
		googleError(w, http.StatusNotFound, "NOT_FOUND", "Function "+r.URL.Path+" does not exist")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Content-Type "+ct)
		return
	}
	var req struct {
		Data *string `json:"data"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Data == nil {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("Invalid JSON payload received. %v", err))
		return
	}
	if _, err := posttest.DecodeEvent(strings.NewReader(*req.Data)); err != nil {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "data is not a Falco event: "+err.Error())
		return
	}
	n := f.calls.Add(1)
	w.Header().Set("Content-Type", "application/json")
	if f.failing.Load() {
		fmt.Fprintf(w, `{"executionId":"exec-%d","error":"Error: function crashed"}`, n)
		return
	}
	fmt.Fprintf(w, `{"executionId":"exec-%d","result":"ok"}`, n)
}

func functionsOutput(t *testing.T, base, credentials string) delivery.Sender {
	t.Helper()
	c := defaults()
	c.Credentials = credentials
	c.CloudFunctions = CloudFunctionsConfig{Name: testFunction, Endpoint: base}
	o, err := NewCloudFunctions(c, outputs.Env{})
	return posttest.Must(t, o, err)
}

// TestCloudFunctionsGolden: the call's body for a recorded event, and its data is the
// Falco JSON falcosidekick marshals (as its Cloud Run output posted it).
func TestCloudFunctionsGolden(t *testing.T) {
	var body []byte
	srv := posttest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		body = buf.Bytes()
		fmt.Fprint(w, `{"executionId":"e1"}`)
	}))
	evs := goldens.Events(t, func(name string) string { return "0000-" + name })
	if err := functionsOutput(t, srv.URL, "").Send(context.Background(), evs["many_fields"]); err != nil {
		t.Fatal(err)
	}
	goldens.Check(t, "testdata/cloudfunctions_call.json", goldens.IndentJSON(t, body))
	var call callRequest
	if err := json.Unmarshal(body, &call); err != nil {
		t.Fatal(err)
	}
	goldens.SameEventJSON(t, "gcpcloudrun", "many_fields", []byte(call.Data))
}

// TestCloudFunctionsStrict: with a key, the call carries the token the key's endpoint
// issued; a function that failed is a permanent error naming it; an unknown function is a
// permanent 404.
func TestCloudFunctionsStrict(t *testing.T) {
	ts := newTokenServer(t, scopeCloudPlatform)
	api := &functionsAPI{ts: ts}
	srv := posttest.Server(t, api)
	out := functionsOutput(t, srv.URL, ts.credentialsValue(t))
	ev := numbered(1)[0]
	if err := out.Send(context.Background(), ev); err != nil || api.calls.Load() != 1 {
		t.Fatalf("Send = %v after %d calls", err, api.calls.Load())
	}
	api.failing.Store(true)
	err := out.Send(context.Background(), ev)
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "function crashed") || !strings.Contains(err.Error(), testFunction) {
		t.Errorf("failed function: %v", err)
	}
	err = functionsOutput(t, srv.URL+"/elsewhere", ts.credentialsValue(t)).Send(context.Background(), ev)
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown function: %v", err)
	}
	// Without the key (an endpoint override, so no token), the API refuses the call.
	err = functionsOutput(t, srv.URL, "").Send(context.Background(), ev)
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "401") {
		t.Errorf("no token: %v", err)
	}
}

// TestCloudFunctionsDelivery: nothing is lost while the API is down; minimumpriority holds.
func TestCloudFunctionsDelivery(t *testing.T) {
	ts := newTokenServer(t, scopeCloudPlatform)
	key := ts.credentialsValue(t)
	posttest.Delivery(t, func(t *testing.T, base string) delivery.Sender { return functionsOutput(t, base, key) },
		&functionsAPI{ts: ts})
}
