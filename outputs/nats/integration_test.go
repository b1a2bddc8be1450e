package nats

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/metrics"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

// natsURL returns the NATS server (with JetStream) the tests use: the one already running on
// 127.0.0.1:4222 when there is one, else a nats-server started for the test.
func natsURL(t *testing.T) string {
	t.Helper()
	testpeers.Need(t, "nats-server")
	if testpeers.PortOpen(4222) {
		return "nats://127.0.0.1:4222"
	}
	return startServer(t, testpeers.FreePort(t))
}

// startServer runs nats-server with JetStream on port.
func startServer(t *testing.T, port int) string {
	t.Helper()
	bin := testpeers.Bin(t, "nats-server")
	dir := t.TempDir()
	testpeers.Start(t, "nats-server", []string{bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dir},
		nil, func() bool { return testpeers.PortOpen(port) }, 15*time.Second)
	return fmt.Sprintf("nats://127.0.0.1:%d", port)
}

func unique(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "sakertest" + hex.EncodeToString(b)
}

func testEnv() outputs.Env {
	return outputs.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Policy: delivery.DefaultPolicy()}
}

func testEvent(i int, prio event.Priority) *event.Event {
	return &event.Event{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Output: "File <below> & known binary dir",
		Priority: prio, Rule: "Write below binary dir", Time: time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC),
		Source: "syscall", Hostname: "h", OutputFields: map[string]any{"fd.name": "/bin/x", "proc.pid": 42}}
}

func connect(t *testing.T, url string) *natsgo.Conn {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatalf("test subscriber: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestCorePublish sends through a real server and reads the messages back with a subscriber:
// subject from the template, payload byte-identical to the event JSON.
func TestCorePublish(t *testing.T) {
	url := natsURL(t)
	prefix := unique(t)
	sub := connect(t, url)
	s, err := sub.SubscribeSync(prefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	out, err := New(&Config{HostPort: url, SubjectTemplate: prefix + ".<priority>.<rule>", CheckCert: true}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	evs := []*event.Event{testEvent(1, event.Error), testEvent(2, event.Critical)}
	for _, ev := range evs {
		if err := out.Send(ctx, ev); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	for _, ev := range evs {
		m, err := s.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		want := prefix + "." + map[event.Priority]string{event.Error: "error", event.Critical: "critical"}[ev.Priority] + ".write_below_binary_dir"
		if m.Subject != want {
			t.Errorf("subject %q, want %q", m.Subject, want)
		}
		if !bytes.Equal(m.Data, ev.JSON()) {
			t.Errorf("payload %s, want %s", m.Data, ev.JSON())
		}
	}
}

// TestJetStreamPublishDedup publishes with acks to a stream created for the test, twice with
// the same uuid: the stream keeps one message, carrying Nats-Msg-Id.
func TestJetStreamPublishDedup(t *testing.T) {
	url := natsURL(t)
	prefix := unique(t)
	js := newJS(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream := createStream(ctx, t, js, prefix)

	out, err := New(&Config{HostPort: url, SubjectTemplate: prefix + ".<priority>.<rule>", JetStream: true, CheckCert: true}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ev := testEvent(7, event.Warning)
	for i := 0; i < 2; i++ {
		if err := out.Send(ctx, ev); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1 (deduplicated by Nats-Msg-Id)", info.State.Msgs)
	}
	m, err := stream.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != prefix+".warning.write_below_binary_dir" || !bytes.Equal(m.Data, ev.JSON()) {
		t.Errorf("stored %s %s", m.Subject, m.Data)
	}
	if id := m.Header.Get(jetstream.MsgIDHeader); id != ev.UUID {
		t.Errorf("Nats-Msg-Id %q, want %q", id, ev.UUID)
	}

	// A subject no stream covers is a transient error (the stream may be created later).
	out2, err := New(&Config{HostPort: url, SubjectTemplate: unique(t) + ".<rule>", JetStream: true, CheckCert: true}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer out2.Close()
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	if err := out2.Send(sctx, ev); err == nil || delivery.IsPermanent(err) {
		t.Errorf("publish without a stream: %v, want a transient error", err)
	}
}

func newJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func createStream(ctx context.Context, t *testing.T, js jetstream.JetStream, prefix string) jetstream.Stream {
	t.Helper()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: prefix, Subjects: []string{prefix + ".>"},
		Storage: jetstream.MemoryStorage, Duplicates: time.Minute})
	if err != nil {
		t.Fatalf("create stream %s: %v", prefix, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, prefix); err != nil {
			t.Errorf("delete stream %s: %v", prefix, err)
		}
	})
	return stream
}

// TestDisconnectedFailsFast: with no server, Send fails at once with a transient error rather
// than buffering the message in memory.
func TestDisconnectedFailsFast(t *testing.T) {
	url := fmt.Sprintf("nats://127.0.0.1:%d", testpeers.FreePort(t))
	for _, js := range []bool{false, true} {
		out, err := New(&Config{HostPort: url, JetStream: js, Password: "hunter2secret", User: "u", CheckCert: true}, testEnv())
		if err != nil {
			t.Fatalf("a down server must not fail New: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		start := time.Now()
		err = out.Send(ctx, testEvent(1, event.Error))
		cancel()
		out.Close()
		if err == nil || delivery.IsPermanent(err) {
			t.Fatalf("jetstream=%v: send while down: %v, want a transient error", js, err)
		}
		if !js && time.Since(start) > time.Second {
			t.Errorf("core publish while down took %s, want an immediate failure", time.Since(start))
		}
		if bytes.Contains([]byte(err.Error()), []byte("hunter2secret")) {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

// TestDownThenUp queues events while no server listens, then starts nats-server with
// JetStream and a stream: the engine's retries deliver every event, exactly once.
func TestDownThenUp(t *testing.T) {
	port := testpeers.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	prefix := unique(t)
	out, err := New(&Config{HostPort: url, SubjectTemplate: prefix + ".<priority>.<rule>", JetStream: true, CheckCert: true}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	p := delivery.DefaultPolicy()
	p.Timeout = 2 * time.Second
	p.Retry.Initial = 50 * time.Millisecond
	p.Retry.Max = 300 * time.Millisecond
	eng := deliverytest.Start(t, out, p)
	const n = 20
	for i := 0; i < n; i++ {
		if _, err := eng.Publish(context.Background(), testEvent(i, event.Error), []string{"nats"}); err != nil {
			t.Fatal(err)
		}
	}

	startServer(t, port)
	js := newJS(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: prefix, Subjects: []string{prefix + ".>"}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var stored uint64
	testpeers.Eventually(t, 20*time.Second, func() bool {
		info, err := stream.Info(ctx)
		if err == nil {
			stored = info.State.Msgs
		}
		return stored == n
	}, "stream holds %d of %d events", stored, n)
	if lost := eng.Stop(5 * time.Second); lost != 0 {
		t.Errorf("%d events lost at stop", lost)
	}
	seen := map[string]bool{}
	for seq := uint64(1); seq <= n; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		seen[m.Header.Get(jetstream.MsgIDHeader)] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct events stored, want %d", len(seen), n)
	}
}

// TestMinimumPriority: the engine's Route honours nats.minimumpriority.
func TestMinimumPriority(t *testing.T) {
	out, err := New(&Config{HostPort: fmt.Sprintf("nats://127.0.0.1:%d", testpeers.FreePort(t)), CheckCert: true}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	eng := delivery.NewEngine(delivery.NewMemoryBus(), metrics.New(0), nil, nil)
	p := delivery.DefaultPolicy()
	p.MinimumPriority = "error"
	if err := eng.Add(out, p); err != nil {
		t.Fatal(err)
	}
	if got := eng.Route(testEvent(1, event.Warning), ""); len(got) != 0 {
		t.Errorf("warning routed to %v", got)
	}
	if got := eng.Route(testEvent(1, event.Critical), ""); len(got) != 1 || got[0] != "nats" {
		t.Errorf("critical routed to %v", got)
	}
}
