package n8n

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

// The settings of falcosidekick's recordings (N8N_USER=u, N8N_PASSWORD=p,
// N8N_HEADERAUTHNAME=X-N8N, N8N_HEADERAUTHVALUE=v).
func newOutput(t *testing.T, base string) delivery.Sender {
	t.Helper()
	c := defaults()
	c.Address, c.User, c.Password, c.HeaderAuthName, c.HeaderAuthValue = base+"/n8n", "u", "p", "X-N8N", "v"
	o, err := New(c, outputs.Env{})
	return posttest.Must(t, o, err)
}

// endpoint is an n8n Webhook node at /n8n as strict as n8n: its production path only
// (404 otherwise), the credentials it was set up with (403 "Authorization data is wrong!"
// otherwise), a JSON body; it answers as a node that responds immediately.
type endpoint struct{}

func (endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if r.Method != http.MethodPost || r.URL.Path != "/n8n" {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"code":404,"message":"The requested webhook \"` + r.Method + ` ` + r.URL.Path + `\" is not registered."}`))
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" || r.Header.Get("X-N8N") != "v" {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("Authorization data is wrong!"))
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		http.Error(w, `{"code":400,"message":"content-type is not JSON"}`, http.StatusBadRequest)
		return
	}
	if _, err := posttest.DecodeEvent(r.Body); err != nil {
		http.Error(w, `{"code":400,"message":"`+err.Error()+`"}`, http.StatusBadRequest)
		return
	}
	_, _ = w.Write([]byte(`{"message":"Workflow was started"}`))
}

// TestPayloadGolden: the Falco JSON to the same path as falcosidekick, with the same basic
// and header authentication.
func TestPayloadGolden(t *testing.T) {
	posttest.Check(t, posttest.Golden{Variant: "n8n", Output: newOutput, Endpoint: endpoint{},
		Headers: []string{"Authorization", "X-N8n", "Content-Type"}})
}

func TestSendToStrictEndpoint(t *testing.T) {
	srv := posttest.Server(t, endpoint{}).URL
	ev := goldens.Events(t, nil)["many_fields"]
	if err := newOutput(t, srv).Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	c := defaults()
	c.Address, c.User, c.Password = srv+"/n8n", "u", "WRONGPASS"
	o, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Send(context.Background(), ev); err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("wrong password: want a permanent 403 error, got %v", err)
	}
}

// TestDelivery: nothing is lost while the service is down, and n8n.minimumpriority keeps lower
// events out.
func TestDelivery(t *testing.T) { posttest.Delivery(t, newOutput, endpoint{}) }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Address: "n8n.example/webhook/SECRETID"}, "n8n.address"},
		{Config{Address: "https://n8n.example/webhook/x", User: "u"}, "n8n.password is empty"},
		{Config{Address: "https://n8n.example/webhook/x", Password: "SECRETPW"}, "n8n.user is empty"},
		{Config{Address: "https://n8n.example/webhook/x", HeaderAuthValue: "SECRETV"}, "n8n.headerauthname is empty"},
		{Config{Address: "https://n8n.example/webhook/x", HeaderAuthName: "X Bad", HeaderAuthValue: "SECRETV"}, "n8n.headerauthname"},
	} {
		posttest.Refused(t, tc.c.Validate(), tc.want)
	}
}
