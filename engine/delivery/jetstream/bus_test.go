package jetstream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/testpeers"
)

// testAckWait is short, so the tests see a dead holder's events come back quickly.
const testAckWait = time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testEvent(i int) *event.Event {
	return &event.Event{UUID: "uuid-" + strconv.Itoa(i), Output: "test event", Priority: event.Warning, Rule: "Test rule",
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), OutputFields: map[string]any{"seq": i}, Source: "syscalls",
		Received: time.Now()}
}

func policy() delivery.Policy {
	p := delivery.DefaultPolicy()
	p.MaxConcurrentRequests = 2
	return p
}

func openSpool(t *testing.T, dir string, maxBytes int64) *Bus {
	t.Helper()
	cfg := DefaultSpoolConfig()
	cfg.Path = dir
	cfg.AckWait = testAckWait
	if maxBytes > 0 {
		cfg.MaxBytes = maxBytes
	}
	b, err := OpenEmbedded(cfg, quiet())
	if err != nil {
		t.Fatalf("open spool: %v", err)
	}
	return b
}

// openSpoolWith opens the spool in dir with outputs declared.
func openSpoolWith(t *testing.T, dir string, outputs ...string) *Bus {
	t.Helper()
	b := openSpool(t, dir, 0)
	for _, o := range outputs {
		if err := b.AddOutput(o, policy()); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// receiveNothing fails when output gets a delivery within 300ms.
func receiveNothing(t *testing.T, b *Bus, output, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if d, err := b.Receive(ctx, output); err == nil {
		t.Fatalf("%s got %s again %s", output, d.Event().JSON(), why)
	}
}

// addWebhookWith declares the webhook output on b and publishes event seq to it.
func addWebhookWith(t *testing.T, b *Bus, seq int) {
	t.Helper()
	if err := b.AddOutput("webhook", policy()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(context.Background(), testEvent(seq), []string{"webhook"}); err != nil {
		t.Fatal(err)
	}
}

// receiveSeq takes one delivery of output and returns its seq field.
func receiveSeq(t *testing.T, b *Bus, output string) (delivery.Delivery, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := b.Receive(ctx, output)
	if err != nil {
		t.Fatalf("receive %s: %v", output, err)
	}
	n, err := strconv.Atoi(event.FieldText(d.Event().OutputFields["seq"]))
	if err != nil {
		t.Fatalf("seq of %s: %v", d.Event().JSON(), err)
	}
	return d, n
}

// An event stored in the spool and not acknowledged survives closing the process's bus and
// comes back, marked redelivered, from a new bus on the same directory; an acknowledged one
// does not.
func TestSpoolKeepsUnacknowledgedEventsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b := openSpoolWith(t, dir, "webhook", "slack")
	for i := 0; i < 3; i++ {
		if _, err := b.Publish(context.Background(), testEvent(i), []string{"webhook", "slack"}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// A retried publish (same uuid, as the sender gave it) is not stored twice.
	if _, err := b.Publish(context.Background(), testEvent(0), []string{"webhook"}); err != nil {
		t.Fatal(err)
	}
	// A uuid saker assigned is new by construction: the event is stored without the stream's
	// duplicate check (publishing the same one twice, which intake never does, stores it twice).
	assigned := testEvent(7)
	assigned.UUIDAssigned = true
	for range 2 {
		if _, err := b.Publish(context.Background(), assigned, []string{"slack"}); err != nil {
			t.Fatal(err)
		}
	}
	if st := b.State(); st.Mode != "embedded" || !st.Connected {
		t.Fatalf("state %+v", st)
	}
	for i, want := range []int{0, 1, 2, 7, 7} {
		d, seq := receiveSeq(t, b, "slack")
		if seq != want {
			t.Fatalf("slack delivery %d: seq %d, want %d", i, seq, want)
		}
		d.Done()
	}
	d, seq := receiveSeq(t, b, "webhook")
	if seq != 0 || d.Event().Rule != "Test rule" || d.Event().Received.IsZero() {
		t.Fatalf("first webhook event: seq %d, %s", seq, d.Event().JSON())
	}
	d.Done()
	held, _ := receiveSeq(t, b, "webhook") // taken, never settled: as if the process died
	_ = held
	b.Shutdown()

	b = openSpoolWith(t, dir, "webhook", "slack")
	defer b.Shutdown()
	got := map[int]bool{}
	redelivered := 0
	for len(got) < 2 {
		d, seq := receiveSeq(t, b, "webhook")
		if seq == 0 {
			t.Fatalf("acknowledged event 0 delivered again")
		}
		if d.Deliveries() > 1 {
			redelivered++
		}
		got[seq] = true
		d.Done()
	}
	if !got[1] || !got[2] || redelivered == 0 {
		t.Fatalf("after restart got %v, %d redelivered; want 1 and 2, one redelivered", got, redelivered)
	}
	receiveNothing(t, b, "slack", "after acknowledging it")
}

// A full spool refuses the event as a full queue (the input answers 503), naming the output.
func TestSpoolFullIsFullError(t *testing.T) {
	b := openSpool(t, t.TempDir(), 4096)
	defer b.Shutdown()
	if err := b.AddOutput("webhook", policy()); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = b.Publish(context.Background(), testEvent(i), []string{"webhook"})
	}
	var full *delivery.FullError
	if !errors.As(err, &full) || full.Output != "webhook" {
		t.Fatalf("publishing past spool.maxbytes: %v, want a FullError for webhook", err)
	}
}

// A spool whose stream files exist but cannot be loaded is an error naming the path; saker
// does not start empty over it.
func TestSpoolThatCannotLoadIsReported(t *testing.T) {
	dir := t.TempDir()
	b := openSpool(t, dir, 0)
	addWebhookWith(t, b, 1)
	b.Shutdown()
	meta := filepath.Join(dir, "jetstream", "$G", "streams", DefaultStream, "meta.inf")
	if err := os.WriteFile(meta, []byte("{truncated"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultSpoolConfig()
	cfg.Path = dir
	b, err := OpenEmbedded(cfg, quiet())
	if err == nil {
		b.Shutdown()
		t.Fatal("a spool with a corrupted stream opened without error")
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "does not start empty") {
		t.Fatalf("error %q should name the path and refuse to start empty", err)
	}
}

// spool.listen opens a NATS listener on the embedded server, so the nats CLI can inspect it.
func TestSpoolListen(t *testing.T) {
	cfg := DefaultSpoolConfig()
	cfg.Path = t.TempDir()
	cfg.Listen = "127.0.0.1:" + strconv.Itoa(testpeers.FreePort(t))
	b, err := OpenEmbedded(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	nc, err := nats.Connect("nats://" + cfg.Listen)
	if err != nil {
		t.Fatalf("spool.listen %s: %v", cfg.Listen, err)
	}
	defer nc.Close()
	js, _ := natsjs.New(nc)
	if _, err := js.Stream(context.Background(), DefaultStream); err != nil {
		t.Fatalf("the spool's stream seen through spool.listen: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	s := DefaultSpoolConfig()
	s.Sync = "sometimes"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "spool.sync") {
		t.Fatalf("spool.sync=sometimes: %v", err)
	}
	s.Sync = "always"
	s.Listen = "nohost"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "spool.listen") {
		t.Fatalf("spool.listen=nohost: %v", err)
	}
	e := DefaultExternalConfig()
	e.Stream = "a.b"
	if err := e.Validate(); err == nil || !strings.Contains(err.Error(), "bus.jetstream.stream") {
		t.Fatalf("stream a.b: %v", err)
	}
	if got := redactURL("nats://u:secret@h:4222,nats://h2:4222"); strings.Contains(got, "secret") || !strings.Contains(got, "h2:4222") {
		t.Fatalf("redactURL: %s", got)
	}
}

// startNATS runs a nats-server with JetStream on a free port with its own store.
func startNATS(t *testing.T, port int, store string) *testpeers.Proc {
	t.Helper()
	bin := testpeers.Bin(t, "nats-server")
	return testpeers.Start(t, "nats-server", []string{bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", store},
		nil, func() bool { return testpeers.PortOpen(port) }, 20*time.Second)
}

func openExternal(t *testing.T, port int) *Bus {
	t.Helper()
	cfg := DefaultExternalConfig()
	cfg.URL = "nats://127.0.0.1:" + strconv.Itoa(port)
	cfg.AckWait = testAckWait
	b, err := OpenExternal(cfg, quiet())
	if err != nil {
		t.Fatalf("open external: %v", err)
	}
	return b
}

// Two replicas share each output's consumer: every event reaches one of them once, and what
// a replica held when it died goes to the other.
func TestExternalReplicasShareTheWork(t *testing.T) {
	port := testpeers.FreePort(t)
	startNATS(t, port, t.TempDir())
	a, b := openExternal(t, port), openExternal(t, port)
	defer b.Shutdown()
	for _, r := range []*Bus{a, b} {
		if err := r.AddOutput("webhook", policy()); err != nil {
			t.Fatal(err)
		}
	}
	const n = 40
	for i := 0; i < n; i++ {
		r := a
		if i%2 == 1 {
			r = b
		}
		if _, err := r.Publish(context.Background(), testEvent(i), []string{"webhook"}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// Replica a takes one event and dies without settling it.
	_, lost := receiveSeq(t, a, "webhook")
	a.nc.Close()

	var mu sync.Mutex
	seen := map[int]int{}
	for {
		mu.Lock()
		done := len(seen) == n
		mu.Unlock()
		if done {
			break
		}
		d, seq := receiveSeq(t, b, "webhook")
		mu.Lock()
		seen[seq]++
		mu.Unlock()
		d.Done()
	}
	if seen[lost] != 1 {
		t.Fatalf("event %d held by the dead replica delivered %d times by the other", lost, seen[lost])
	}
	for seq, c := range seen {
		if c != 1 {
			t.Fatalf("event %d delivered %d times", seq, c)
		}
	}
}

// While the NATS server is down, Publish says the store is unavailable (the input answers 503),
// and after it restarts on the same store, publishing and the stored events work again.
func TestExternalOutageIsUnavailable(t *testing.T) {
	port := testpeers.FreePort(t)
	store := t.TempDir()
	srv := startNATS(t, port, store)
	b := openExternal(t, port)
	defer b.Shutdown()
	addWebhookWith(t, b, 1)
	srv.Stop()
	testpeers.Eventually(t, 10*time.Second, func() bool { return !b.nc.IsConnected() }, "client still connected after the server stopped")
	if _, err := b.Publish(context.Background(), testEvent(2), []string{"webhook"}); !errors.Is(err, delivery.ErrUnavailable) {
		t.Fatalf("publish with NATS down: %v, want ErrUnavailable", err)
	}
	if st := b.State(); st.Connected || st.Error == "" {
		t.Fatalf("state with NATS down: %+v", st)
	}
	startNATS(t, port, store)
	testpeers.Eventually(t, 15*time.Second, func() bool { return b.nc.IsConnected() }, "client did not reconnect")
	if _, err := b.Publish(context.Background(), testEvent(3), []string{"webhook"}); err != nil {
		t.Fatalf("publish after the restart: %v", err)
	}
	got := map[int]bool{}
	for len(got) < 2 {
		d, seq := receiveSeq(t, b, "webhook")
		got[seq] = true
		d.Done()
	}
	if !got[1] || !got[3] {
		t.Fatalf("after the restart got %v, want events 1 and 3", got)
	}
}

// saker starts while NATS is down: the inputs answer 503 (ErrUnavailable) until the server
// is up, then the stream and consumers are set up and events flow.
func TestExternalStartsBeforeNATS(t *testing.T) {
	port := testpeers.FreePort(t)
	testpeers.Need(t, "nats-server")
	b := openExternal(t, port)
	defer b.Shutdown()
	if err := b.AddOutput("webhook", policy()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(context.Background(), testEvent(1), []string{"webhook"}); !errors.Is(err, delivery.ErrUnavailable) {
		t.Fatalf("publish before NATS is up: %v, want ErrUnavailable", err)
	}
	if st := b.State(); st.Connected || st.Error == "" {
		t.Fatalf("state before NATS is up: %+v", st)
	}
	startNATS(t, port, t.TempDir())
	testpeers.Eventually(t, 20*time.Second, func() bool {
		_, err := b.Publish(context.Background(), testEvent(2), []string{"webhook"})
		return err == nil
	}, "publishing never worked after NATS came up")
	d, seq := receiveSeq(t, b, "webhook")
	d.Done()
	if seq != 2 {
		t.Fatalf("received event %d, want 2", seq)
	}
}

// A stream of the same name created with other settings is reported, never changed.
func TestExternalIncompatibleStream(t *testing.T) {
	port := testpeers.FreePort(t)
	startNATS(t, port, t.TempDir())
	nc, err := nats.Connect("nats://127.0.0.1:" + strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := natsjs.New(nc)
	if _, err := js.CreateStream(context.Background(), natsjs.StreamConfig{Name: DefaultStream, Subjects: []string{"saker.out.>"}}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultExternalConfig()
	cfg.URL = "nats://127.0.0.1:" + strconv.Itoa(port)
	b, err := OpenExternal(cfg, quiet())
	if err == nil {
		b.Shutdown()
		t.Fatal("opened a stream with limits retention")
	}
	if !strings.Contains(err.Error(), "other settings") || !strings.Contains(err.Error(), "retention") {
		t.Fatalf("error %q should say the stream has another retention", err)
	}
}

// Every event acknowledged by the stream is delivered even when the NATS server is restarted
// (SIGTERM, same store) while events are being published. With interest retention,
// nats-server 2.9.10 lost an event or two published just before the shutdown in this test;
// work-queue retention did not.
func TestExternalRestartUnderLoadLosesNothingAccepted(t *testing.T) {
	// Events that came with their UUID are stored one by one with Nats-Msg-Id; those saker
	// gave a UUID, published by several inputs at once, are stored in batches.
	t.Run("client uuid", func(t *testing.T) { restartUnderLoad(t, testEvent, 1) })
	t.Run("batched", func(t *testing.T) { restartUnderLoad(t, assignedEvent, 4) })
}

func restartUnderLoad(t *testing.T, newEvent func(int) *event.Event, publishers int) {
	port := testpeers.FreePort(t)
	store := t.TempDir()
	srv := startNATS(t, port, store)
	b := openExternal(t, port)
	defer b.Shutdown()
	if err := b.AddOutput("webhook", policy()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	accepted, got := map[int]bool{}, map[int]bool{}
	stop := make(chan struct{})
	var published sync.WaitGroup
	for p := range publishers {
		published.Go(func() {
			for i := p; ; i += publishers {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				if _, err := b.Publish(context.Background(), newEvent(i), []string{"webhook"}); err == nil {
					mu.Lock()
					accepted[i] = true
					mu.Unlock()
				}
			}
		})
	}
	go func() {
		for {
			d, err := b.Receive(context.Background(), "webhook")
			if err != nil {
				return
			}
			n, _ := strconv.Atoi(event.FieldText(d.Event().OutputFields["seq"]))
			mu.Lock()
			got[n] = true
			mu.Unlock()
			d.Done()
		}
	}()
	count := func(m map[int]bool) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return len(m) > 100 }
	}
	testpeers.Eventually(t, 10*time.Second, count(accepted), "no events accepted")
	srv.Stop()
	testpeers.Eventually(t, 10*time.Second, func() bool { return !b.nc.IsConnected() }, "still connected")
	startNATS(t, port, store)
	testpeers.Eventually(t, 15*time.Second, func() bool { return b.nc.IsConnected() }, "did not reconnect")
	mu.Lock()
	before := len(accepted)
	mu.Unlock()
	testpeers.Eventually(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(accepted) > before+50 },
		"publishing did not resume after the restart")
	close(stop)
	published.Wait()
	testpeers.Eventually(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range accepted {
			if !got[i] {
				return false
			}
		}
		return true
	}, "accepted events missing after the NATS restart")
}

// bus.jetstream.user and password authenticate; a wrong password is reported, not hidden.
func TestExternalUserPassword(t *testing.T) {
	port := testpeers.FreePort(t)
	bin := testpeers.Bin(t, "nats-server")
	testpeers.Start(t, "nats-server", []string{bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", t.TempDir(),
		"--user", "saker", "--pass", "s3cret"}, nil, func() bool { return testpeers.PortOpen(port) }, 20*time.Second)
	cfg := DefaultExternalConfig()
	cfg.URL = "nats://127.0.0.1:" + strconv.Itoa(port)
	cfg.User, cfg.Password = "saker", "s3cret"
	b, err := OpenExternal(cfg, quiet())
	if err != nil {
		t.Fatalf("with the right password: %v", err)
	}
	if err := b.AddOutput("webhook", policy()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(context.Background(), testEvent(1), []string{"webhook"}); err != nil {
		t.Fatalf("publish with the right password: %v", err)
	}
	b.Shutdown()

	cfg.Password = "wrong"
	b, err = OpenExternal(cfg, quiet())
	if err == nil {
		b.Shutdown()
		t.Fatal("a wrong password was accepted")
	}
	if !strings.Contains(strings.ToLower(err.Error()), "authorization") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error %q should say authorization failed, without the password", err)
	}
}

// An event held by a live worker past the ack wait (the engine retrying it) is kept alive,
// not handed out again.
func TestHeldEventIsNotRedelivered(t *testing.T) {
	b := openSpool(t, t.TempDir(), 0)
	defer b.Shutdown()
	addWebhookWith(t, b, 1)
	d, _ := receiveSeq(t, b, "webhook")
	ctx, cancel := context.WithTimeout(context.Background(), 5*testAckWait/2)
	defer cancel()
	if again, err := b.Receive(ctx, "webhook"); err == nil {
		t.Fatalf("event handed out again while held (deliveries %d)", again.Deliveries())
	}
	d.Done()
}

// Events a killed process held are delivered again as soon as the spool is reopened, not one
// ack wait (15s by default) later, and their deliveries are counted.
func TestSpoolRedeliversADeadHoldersEventsAtOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultSpoolConfig()
	cfg.Path = dir
	b, err := OpenEmbedded(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	addWebhookWith(t, b, 1)
	_, _ = receiveSeq(t, b, "webhook") // taken, never settled: the process dies
	b.Shutdown()

	b, err = OpenEmbedded(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	began := time.Now()
	if err := b.AddOutput("webhook", policy()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.AckWait/3)
	defer cancel()
	d, err := b.Receive(ctx, "webhook")
	if err != nil {
		t.Fatalf("the dead holder's event not redelivered within %s of the restart (ack wait %s): %v", cfg.AckWait/3, cfg.AckWait, err)
	}
	if d.Deliveries() != 2 {
		t.Errorf("deliveries %d, want 2", d.Deliveries())
	}
	d.Done()
	t.Logf("redelivered %s after the restart", time.Since(began).Round(time.Millisecond))
	// The configured ack wait is back: a held event is not handed out again meanwhile.
	info, err := b.queues["webhook"].cons.Info(context.Background())
	if err != nil || info.Config.AckWait != cfg.AckWait {
		t.Fatalf("consumer ack wait after the restart: %v %v, want %s", info, err, cfg.AckWait)
	}
}

// collect records what RemoveUndeclared hands out.
type collect struct {
	mu  sync.Mutex
	got map[string][]string // output -> uuids
}

func (c *collect) removed(output string, ev *event.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got == nil {
		c.got = map[string][]string{}
	}
	c.got[output] = append(c.got[output], ev.UUID)
}

// An output removed from the configuration loses its consumer at the next start, and the
// events stored for it are handed out (to the dead letter) and leave the spool, so they do
// not hold its space forever; the outputs still configured keep theirs.
func TestSpoolRemovesUndeclaredOutputs(t *testing.T) {
	dir := t.TempDir()
	b := openSpool(t, dir, 0)
	for _, o := range []string{"webhook", "slack"} {
		if err := b.AddOutput(o, policy()); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		if _, err := b.Publish(context.Background(), testEvent(i), []string{"webhook", "slack"}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = receiveSeq(t, b, "webhook") // held by a process that dies: still removed
	b.Shutdown()

	b = openSpool(t, dir, 0)
	if err := b.AddOutput("slack", policy()); err != nil {
		t.Fatal(err)
	}
	var c collect
	b.RemoveUndeclared(c.removed)
	if len(c.got["webhook"]) != 3 || len(c.got) != 1 {
		t.Fatalf("removed %v, want the 3 events of webhook", c.got)
	}
	if _, err := b.stream.Consumer(context.Background(), "webhook"); !errors.Is(err, natsjs.ErrConsumerNotFound) {
		t.Errorf("webhook's consumer after its removal: %v", err)
	}
	info, err := b.stream.Info(context.Background())
	if err != nil || info.State.Msgs != 3 {
		t.Fatalf("stream after the removal: %+v %v, want slack's 3 events", info.State, err)
	}
	for i := 0; i < 3; i++ {
		d, _ := receiveSeq(t, b, "slack")
		d.Done()
	}
	b.Shutdown()

	// Declared again, the output starts empty.
	b = openSpool(t, dir, 0)
	defer b.Shutdown()
	if err := b.AddOutput("webhook", policy()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if d, err := b.Receive(ctx, "webhook"); err == nil {
		t.Fatalf("webhook got %s after its events were removed", d.Event().JSON())
	}
}

// In external mode a replica that does not have an output leaves its consumer alone while
// another replica delivers it (a rolling update), and removes it once nobody does.
func TestExternalKeepsAnOutputAnotherReplicaDelivers(t *testing.T) {
	port := testpeers.FreePort(t)
	startNATS(t, port, t.TempDir())
	a := openExternal(t, port)
	addWebhookWith(t, a, 1)
	d, _ := receiveSeq(t, a, "webhook")
	d.Done()
	if _, err := a.Publish(context.Background(), testEvent(2), []string{"webhook"}); err != nil {
		t.Fatal(err)
	}
	b := openExternal(t, port)
	defer b.Shutdown()
	if err := b.AddOutput("slack", policy()); err != nil {
		t.Fatal(err)
	}
	var c collect
	b.RemoveUndeclared(c.removed)
	if len(c.got) != 0 {
		t.Fatalf("removed %v while replica a delivers webhook", c.got)
	}
	if _, err := b.stream.Consumer(context.Background(), "webhook"); err != nil {
		t.Fatalf("webhook's consumer removed while replica a uses it: %v", err)
	}
	a.Shutdown()
	// The server forgets a's pull requests once it has processed its disconnection.
	testpeers.Eventually(t, 5*time.Second, func() bool {
		info, err := b.stream.Consumer(context.Background(), "webhook")
		return err == nil && info.CachedInfo().NumWaiting == 0
	}, "replica a's pull requests still waiting after it stopped")
	b.RemoveUndeclared(c.removed)
	if len(c.got["webhook"]) != 1 || c.got["webhook"][0] != "uuid-2" {
		t.Fatalf("after replica a stopped, removed %v, want webhook's uuid-2", c.got)
	}
}
