package aws

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/saker-dev/saker/engine/delivery"
)

// sdkRetryables is the SDK's own judgement of what is worth retrying (throttling codes,
// 500/502/503/504, connection errors), reused since its retryer is off.
var sdkRetryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// refreshableCodes are 4xx errors that a later attempt can succeed past: credentials being
// refreshed by the cache, or a clock-skewed signature the SDK corrects on the next request.
var refreshableCodes = map[string]bool{
	"ExpiredToken": true, "ExpiredTokenException": true, "RequestExpired": true,
	"RequestTimeTooSkewed":   true,
	"KMSThrottlingException": true, "KMSUnavailableException": true,
}

// classify wraps an SDK error with what failed and marks it Permanent when retrying cannot
// help: a request the service rejected as invalid (4xx, a client fault) or one the SDK
// refused to build. Throttling, 408/429/5xx, timeouts and network errors stay transient, so
// the engine retries them with backoff. Unknown errors are transient: losing an alert to a
// misjudged error is worse than a bounded retry.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("%s: %w", what, err)
	if transient(err) {
		return wrapped
	}
	if permanent(err) {
		return delivery.Permanent(wrapped)
	}
	return wrapped
}

func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	if sdkRetryables.IsErrorRetryable(err) == sdkaws.TrueTernary {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) && (refreshableCodes[api.ErrorCode()] || api.ErrorFault() == smithy.FaultServer) {
		return true
	}
	if code := statusCode(err); code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500 {
		return true
	}
	return false
}

func permanent(err error) bool {
	var params *smithy.InvalidParamsError
	if errors.As(err, &params) {
		return true
	}
	var ser *smithy.SerializationError
	if errors.As(err, &ser) {
		return true
	}
	if code := statusCode(err); code >= 400 && code < 500 {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorFault() == smithy.FaultClient
}

// statusCode is the HTTP status of the service's answer, 0 when there was none.
func statusCode(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
