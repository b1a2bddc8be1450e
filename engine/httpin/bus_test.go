package httpin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
)

// downBus is a durable bus whose store cannot be reached.
type downBus struct{ *delivery.MemoryBus }

func (downBus) Publish(context.Context, *event.Event, []string) (delivery.PublishResult, error) {
	return delivery.PublishResult{}, fmt.Errorf("%w: NATS connection reconnecting", delivery.ErrUnavailable)
}
func (downBus) Durable() bool { return true }
func (downBus) State() delivery.BusState {
	return delivery.BusState{Mode: "external", Error: "NATS connection reconnecting"}
}

// An event the bus could not store is refused with 503 and Retry-After, counted as rejected,
// and /healthz shows the bus disconnected.
func TestUnavailableStoreAnswers503(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New(0)
	eng := delivery.NewEngine(downBus{delivery.NewMemoryBus()}, m, nil, log)
	if err := eng.Add(&sink{"a", make(chan *event.Event, 1)}, delivery.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	f := &fixture{srv: httptest.NewServer(newServer(t, Options{MaxBodySize: 4096}, eng, m, log))}
	defer f.srv.Close()
	resp, body := f.do(t, "POST", "/", goodEvent)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "unavailable") {
		t.Fatalf("POST / with the store down: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if _, body = f.do(t, "GET", "/healthz", ""); !strings.Contains(string(body), `"bus":{"mode":"external","connected":false,"error":"NATS connection reconnecting"}`) {
		t.Fatalf("/healthz: %s", body)
	}
	_, body = f.do(t, "GET", "/metrics", "")
	if !strings.Contains(string(body), `falcosecurity_falcosidekick_inputs_total{source="requests",status="rejected"} 1`) ||
		!strings.Contains(string(body), `saker_input_unavailable_total{source="requests"} 1`) {
		t.Fatalf("the 503 is not counted:\n%s", body)
	}
}
