package gcpcloudrun

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

// The settings of falcosidekick's recordings (GCP_CLOUDRUN_JWT=jwt.tok.en).
func newOutput(t *testing.T, base string) delivery.Sender {
	t.Helper()
	return build(t, base, "jwt.tok.en")
}

func build(t *testing.T, base, jwt string) delivery.Sender {
	t.Helper()
	c := defaults()
	c.Endpoint, c.JWT = base+"/gcpcloudrun", jwt
	o, err := New(c, outputs.Env{})
	return posttest.Must(t, o, err)
}

// endpoint is a Cloud Run service that requires authentication, as strict as Google's front
// end: a bearer identity token it accepts (401 without one, 403 with another), then the
// service, which takes a Falco event.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch auth := r.Header.Get("Authorization"); {
	case !strings.HasPrefix(auth, "Bearer "):
		http.Error(w, "Your client does not have permission to the requested URL.", http.StatusUnauthorized)
		return
	case auth != "Bearer jwt.tok.en":
		http.Error(w, "Your client does not have permission to get URL /gcpcloudrun from this server.", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/gcpcloudrun" {
		http.NotFound(w, r)
		return
	}
	if _, err := posttest.DecodeEvent(r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
}

// TestPayloadGolden: the Falco JSON to the same path as falcosidekick, with the same bearer
// token.
func TestPayloadGolden(t *testing.T) {
	posttest.Check(t, posttest.Golden{Variant: "gcpcloudrun", Output: newOutput, Endpoint: endpoint{},
		Headers: []string{"Authorization", "Content-Type"}})
}

// TestSendToStrictEndpoint: a token Cloud Run refuses is a permanent error that does not
// print the token.
func TestSendToStrictEndpoint(t *testing.T) {
	srv := posttest.Server(t, endpoint{})
	err := build(t, srv.URL, "EXPIRED.TOKEN").Send(context.Background(), goldens.Events(t, nil)["many_fields"])
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "EXPIRED") {
		t.Fatalf("want a permanent 403 without the token, got %v", err)
	}
}

// TestDelivery: nothing is lost while the service is down, and gcp.cloudrun.minimumpriority keeps lower
// events out.
func TestDelivery(t *testing.T) { posttest.Delivery(t, newOutput, endpoint{}) }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Endpoint: "falco.run.app/x"}, "gcp.cloudrun.endpoint"},
		{Config{Endpoint: "https://falco.run.app", JWT: "SECRET\nTOKEN"}, "gcp.cloudrun.jwt"},
	} {
		posttest.Refused(t, tc.c.Validate(), tc.want)
	}
}
