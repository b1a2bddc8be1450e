package teams

import (
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/httpout"
)

// FuzzCheckAnswer: any connector answer body is classified without panicking, and only a
// quoted HTTP error of 400 or more fails the delivery.
func FuzzCheckAnswer(f *testing.F) {
	f.Add("1")
	f.Add("Microsoft Teams endpoint returned HTTP error 429 with ContextId x")
	f.Add("Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 413")
	f.Add("HTTP error 200")
	f.Fuzz(func(t *testing.T, body string) {
		err := checkAnswer(&httpout.Response{Status: 200, Body: []byte(body)}, "https://h/REDACTED")
		if err != nil && connectorError.FindStringSubmatch(body) == nil {
			t.Fatalf("failure %v without a quoted HTTP error in %q", err, body)
		}
		_ = delivery.IsPermanent(err)
	})
}
