package gcp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"cloud.google.com/go/auth"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// functionsEndpoint is the Cloud Functions API.
const functionsEndpoint = "https://cloudfunctions.googleapis.com"

// CloudFunctions is the gcpcloudfunctions output: the Cloud Functions v1 API's
// functions.call with the event's Falco JSON as the data string, as falcosidekick calls it
// (it used the gRPC client; this is the same method over its JSON mapping, through saker's
// HTTP client). Google limits this method to a few calls a minute per project; a function
// that must take every alert is better reached by gcp.cloudrun (its HTTPS trigger).
type CloudFunctions struct {
	http  *httpout.Client
	creds *auth.Credentials
	url   string
	name  string
}

// NewCloudFunctions builds the output from the gcp section.
func NewCloudFunctions(c *Config, env outputs.Env) (*CloudFunctions, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.CloudFunctions.Name == "" {
		return nil, fmt.Errorf("gcp.cloudfunctions.name is empty")
	}
	base := c.CloudFunctions.Endpoint
	creds, err := newCredentials(c, scopeCloudPlatform, base, env)
	if err != nil {
		return nil, err
	}
	if base == "" {
		base = functionsEndpoint
	}
	client, err := env.HTTPClient(true, false, nil)
	if err != nil {
		return nil, err
	}
	return &CloudFunctions{http: client, creds: creds, name: c.CloudFunctions.Name,
		url: strings.TrimRight(base, "/") + "/v1/" + c.CloudFunctions.Name + ":call"}, nil
}

// Name implements delivery.Output.
func (f *CloudFunctions) Name() string { return nameCloudFunctions }

// callRequest and callResponse are functions.call's body and answer.
type callRequest struct {
	Data string `json:"data"`
}

type callResponse struct {
	ExecutionID string `json:"executionId"`
	Result      string `json:"result"`
	Error       string `json:"error"`
}

// Send calls the function. A call the function itself failed (the answer's error field) is
// a permanent error: calling it again with the same event would fail the same way, and the
// dead letter keeps the event.
func (f *CloudFunctions) Send(ctx context.Context, ev *event.Event) error {
	headers, err := authHeaders(ctx, f.creds)
	if err != nil {
		return err
	}
	body, err := json.Marshal(callRequest{Data: string(ev.JSON())})
	if err != nil {
		return delivery.Permanent(fmt.Errorf("gcpcloudfunctions: encode the call: %w", err))
	}
	resp, err := f.http.Do(ctx, httpout.Request{URL: f.url, ContentType: "application/json", Body: body, Headers: headers})
	if err != nil {
		return err
	}
	var out callResponse
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return fmt.Errorf("gcpcloudfunctions: call %s: unreadable answer: %w", f.name, err)
	}
	if out.Error != "" {
		return delivery.Permanent(fmt.Errorf("gcpcloudfunctions: function %s failed (execution %s): %s", f.name, out.ExecutionID, out.Error))
	}
	return nil
}
