package aws

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// Lambda is the awslambda output: it invokes the function with the event's Falco JSON as
// the payload. With invocationtype RequestResponse a function error (the handler returned an
// error, crashed or timed out) is a failed delivery, retried by the engine like a 5xx.
type Lambda struct {
	client         *lambda.Client
	function       string
	invocationType string
	logType        string
	log            *slog.Logger
}

// NewLambda builds the output from the aws section.
func NewLambda(c *Config, env outputs.Env) (*Lambda, error) {
	cfg, err := c.parse()
	if err != nil {
		return nil, err
	}
	if cfg.Lambda.FunctionName == "" {
		return nil, fmt.Errorf("aws.lambda.functionname is empty")
	}
	base, err := sdkConfig(cfg, env.Logger())
	if err != nil {
		return nil, err
	}
	endpoint := cfg.Lambda.Endpoint
	client := lambda.NewFromConfig(base, func(o *lambda.Options) {
		if endpoint != "" {
			o.BaseEndpoint = sdkaws.String(endpoint)
		}
	})
	return &Lambda{client: client, function: cfg.Lambda.FunctionName, invocationType: cfg.Lambda.InvocationType,
		logType: cfg.Lambda.LogType, log: env.Logger()}, nil
}

// Name implements delivery.Output.
func (l *Lambda) Name() string { return nameLambda }

// Send invokes the function with the event.
func (l *Lambda) Send(ctx context.Context, ev *event.Event) error {
	in := &lambda.InvokeInput{FunctionName: sdkaws.String(l.function), Payload: ev.JSON(),
		InvocationType: types.InvocationType(l.invocationType)}
	if l.invocationType == invokeRequestResponse {
		// Lambda only returns a log tail for synchronous invocations.
		in.LogType = types.LogType(l.logType)
	}
	out, err := l.client.Invoke(ctx, in)
	if err != nil {
		return classify("lambda Invoke "+l.function, err)
	}
	if out.LogResult != nil && l.log.Enabled(ctx, slog.LevelDebug) {
		if tail, err := base64.StdEncoding.DecodeString(*out.LogResult); err == nil {
			l.log.Debug("function log tail", "function", l.function, "log", string(tail))
		}
	}
	if ferr := functionError(out); ferr != nil {
		return fmt.Errorf("lambda Invoke %s: %w", l.function, ferr)
	}
	return nil
}

// maxErrorPayload bounds how much of a function's error payload goes into the error message.
const maxErrorPayload = 512

// functionError reports a function error. Lambda flags it with X-Amz-Function-Error
// (FunctionError); aws-lambda-rie and some emulators don't, and only return the runtime's
// error document ({"errorMessage": ..., "errorType": ...}), which is recognised too.
func functionError(out *lambda.InvokeOutput) error {
	payload := out.Payload
	if len(payload) > maxErrorPayload {
		payload = append(payload[:maxErrorPayload:maxErrorPayload], "..."...)
	}
	if out.FunctionError != nil {
		return fmt.Errorf("function error (%s): %s", sdkaws.ToString(out.FunctionError), payload)
	}
	if isErrorDocument(out.Payload) {
		return errors.New("function error: " + string(payload))
	}
	return nil
}

// isErrorDocument reports whether payload is a Lambda runtime error document: an object with
// errorMessage and errorType and nothing but the runtimes' other error keys.
func isErrorDocument(payload []byte) bool {
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 || payload[0] != '{' {
		return false
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(payload, &doc) != nil {
		return false
	}
	if _, ok := doc["errorMessage"]; !ok {
		return false
	}
	if _, ok := doc["errorType"]; !ok {
		return false
	}
	for k := range doc {
		switch k {
		case "errorMessage", "errorType", "stackTrace", "requestId", "cause":
		default:
			return false
		}
	}
	return true
}
