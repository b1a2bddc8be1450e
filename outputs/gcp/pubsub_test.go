package gcp

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

const (
	testProject = "saker-test"
	testTopic   = "falco-events"
	fullTopic   = "projects/" + testProject + "/topics/" + testTopic
)

// startPstest runs Pub/Sub's in-process fake on addr ("127.0.0.1:0" for any port) with the
// test topic, served over a real gRPC listener.
func startPstest(t *testing.T, addr string) *pstest.Server {
	t.Helper()
	srv := pstest.NewServerWithAddress(addr)
	t.Cleanup(func() { _ = srv.Close() })
	if _, err := srv.GServer.CreateTopic(context.Background(), &pb.Topic{Name: fullTopic}); err != nil {
		t.Fatal(err)
	}
	return srv
}

func pubsubConfig(endpoint string) *Config {
	c := defaults()
	c.PubSub = PubSubConfig{ProjectID: testProject, Topic: testTopic, Endpoint: endpoint,
		CustomAttributes: map[string]string{"cluster": "prod-eu", "team": "secops"}}
	return c
}

func newPubSub(t *testing.T, c *Config, env outputs.Env) *PubSub {
	t.Helper()
	p, err := NewPubSub(c, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// TestPubSubPstest: every recorded event published through a real gRPC connection to pstest
// arrives as falcosidekick publishes it: the Falco JSON falcosidekick marshals (the same
// bytes its Cloud Run output posted in the recordings) as the data, the custom attributes
// as the attributes.
func TestPubSubPstest(t *testing.T) {
	srv := startPstest(t, "127.0.0.1:0")
	p := newPubSub(t, pubsubConfig("http://"+srv.Addr), outputs.Env{})
	evs := goldens.Events(t, func(name string) string { return "0000-" + name })
	names := goldens.Names(evs)
	for _, name := range names {
		if err := p.Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	msgs := srv.Messages()
	if len(msgs) != len(names) {
		t.Fatalf("pstest holds %d messages, want %d", len(msgs), len(names))
	}
	for i, name := range names {
		m := msgs[i]
		if m.Topic != fullTopic || len(m.Attributes) != 2 || m.Attributes["cluster"] != "prod-eu" || m.Attributes["team"] != "secops" {
			t.Errorf("%s: topic %s, attributes %v", name, m.Topic, m.Attributes)
		}
		goldens.SameEventJSON(t, "gcpcloudrun", name, m.Data)
	}
}

// TestPubSubBatch: a batch is one Publish call, and every message is read back once.
func TestPubSubBatch(t *testing.T) {
	var calls []int
	srv := pstest.NewServerWithAddress("127.0.0.1:0", pstest.ServerReactorOption{FuncName: "Publish",
		Reactor: reactorFunc(func(req any) { calls = append(calls, len(req.(*pb.PublishRequest).Messages)) })})
	t.Cleanup(func() { _ = srv.Close() })
	if _, err := srv.GServer.CreateTopic(context.Background(), &pb.Topic{Name: fullTopic}); err != nil {
		t.Fatal(err)
	}
	p := newPubSub(t, pubsubConfig("http://"+srv.Addr), outputs.Env{})
	evs := numbered(25)
	if err := p.SendBatch(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0] != 25 {
		t.Errorf("Publish calls %v, want one of 25 messages", calls)
	}
	checkEachOnce(t, messageTexts(srv), 25)
}

// reactorFunc observes a call and lets pstest handle it (the fake runs reactors under its
// lock, so appending to a slice needs no more).
type reactorFunc func(req any)

func (f reactorFunc) React(req any) (bool, any, error) { f(req); return false, nil, nil }

// TestPubSubErrors: a missing topic is permanent and names the topic; the error is a
// gRPC status, not a crash, and nothing is published.
func TestPubSubErrors(t *testing.T) {
	srv := startPstest(t, "127.0.0.1:0")
	c := pubsubConfig("http://" + srv.Addr)
	c.PubSub.Topic = "no-such-topic"
	err := newPubSub(t, c, outputs.Env{}).Send(context.Background(), numbered(1)[0])
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "projects/saker-test/topics/no-such-topic") ||
		!strings.Contains(err.Error(), "NotFound") {
		t.Errorf("missing topic: %v, want a permanent NotFound naming the topic", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages published", n)
	}
}

// TestPubSubDeadline: a Pub/Sub that accepts connections but never answers holds a Send no
// longer than the attempt's deadline, and the failure is transient (no client retry loop).
func TestPubSubDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	p := newPubSub(t, pubsubConfig("http://"+l.Addr().String()), outputs.Env{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Send(ctx, numbered(1)[0])
	if took := time.Since(start); err == nil || delivery.IsPermanent(err) || took > 2*time.Second {
		t.Fatalf("Send = %v after %s, want a transient error at the 300ms deadline", err, took)
	}
}

// TestPubSubDownThenUp: events published while Pub/Sub is down are all delivered, each
// once, after it comes up on the same port, through the engine's retries and batches.
func TestPubSubDownThenUp(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testpeers.FreePort(t))
	p := newPubSub(t, pubsubConfig("http://"+addr), outputs.Env{})
	pol := deliverytest.Policy("")
	pol.Batch = delivery.BatchPolicy{MaxEvents: pubsubBatch, MaxBytes: pubsubBatchBytes, FlushInterval: 20 * time.Millisecond}
	eng := deliverytest.Start(t, p, pol)
	const n = 10
	for _, ev := range numbered(n) {
		deliverytest.Publish(t, eng, ev)
	}
	deliverytest.WaitFailing(t, eng)
	srv := startPstest(t, addr)
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(srv.Messages()) >= n }, "pstest did not receive all %d events", n)
	eng.Stop(200 * time.Millisecond)
	checkEachOnce(t, messageTexts(srv), n)
}

// TestPubSubTLSAndToken: with gcp.credentials, each RPC carries a token from the key's
// token endpoint over TLS (the CA from tlsclient.cacertfile), and the publisher service
// (pstest's, behind a TLS listener that checks the token as Google's front end does)
// accepts it; a key the token endpoint refuses is a permanent error.
func TestPubSubTLSAndToken(t *testing.T) {
	ts := newTokenServer(t, scopePubSub)
	pki := testpeers.NewPKI(t)
	fake := startPstest(t, "127.0.0.1:0")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(grpccreds.NewServerTLSFromCert(&pki.ServerCert)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			if got := md.Get("authorization"); len(got) != 1 || ts.token() == "" || got[0] != "Bearer "+ts.token() {
				return nil, status.Error(codes.Unauthenticated, "Request had invalid authentication credentials.")
			}
			if got := md.Get("x-goog-request-params"); len(got) != 1 || got[0] != "topic=projects%2Fsaker-test%2Ftopics%2Ffalco-events" {
				return nil, status.Errorf(codes.InvalidArgument, "routing header %v", got)
			}
			return h(ctx, req)
		}))
	pb.RegisterPublisherServer(gs, &fake.GServer)
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)

	env := outputs.Env{TLS: httpout.TLSFiles{CACertFile: pki.CAFile}}
	c := pubsubConfig(l.Addr().String())
	c.Credentials = ts.credentialsValue(t)
	p := newPubSub(t, c, env)
	if err := p.Send(context.Background(), numbered(1)[0]); err != nil {
		t.Fatal(err)
	}
	if msgs := fake.Messages(); len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), "saker test event 00") {
		t.Fatalf("published %v", msgs)
	}

	bad := newTokenServer(t, scopePubSub)
	bad.refuse.Store(true)
	c.Credentials = bad.credentialsValue(t)
	err = newPubSub(t, c, env).Send(context.Background(), numbered(1)[0])
	if err == nil || !delivery.IsPermanent(err) {
		t.Errorf("refused key: %v, want a permanent error", err)
	}

	// Plaintext with a key would send the token in clear: refused when the config is read.
	c.PubSub.Endpoint = "http://" + l.Addr().String()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "gcp.pubsub.endpoint") {
		t.Errorf("plaintext endpoint with credentials: %v", err)
	}
}

// TestPubSubEmulatorHost: PUBSUB_EMULATOR_HOST points the output at an emulator, plaintext
// and without authentication, as Google's libraries do.
func TestPubSubEmulatorHost(t *testing.T) {
	srv := startPstest(t, "127.0.0.1:0")
	t.Setenv("PUBSUB_EMULATOR_HOST", srv.Addr)
	if err := newPubSub(t, pubsubConfig(""), outputs.Env{}).Send(context.Background(), numbered(1)[0]); err != nil {
		t.Fatal(err)
	}
	if len(srv.Messages()) != 1 {
		t.Fatal("nothing published through PUBSUB_EMULATOR_HOST")
	}
}

func messageTexts(srv *pstest.Server) []string {
	var out []string
	for _, m := range srv.Messages() {
		out = append(out, string(m.Data))
	}
	return out
}

// numbered returns n events whose outputs are "saker test event 00", "... 01", ...
func numbered(n int) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = &event.Event{Rule: fmt.Sprintf("rule %02d", i), Priority: event.Notice, Source: "syscalls",
			Output: fmt.Sprintf("saker test event %02d", i), Time: time.Date(2026, 11, 20, 10, 0, i, 0, time.UTC)}
	}
	return evs
}

// checkEachOnce fails unless each of the n numbered events appears exactly once in texts.
func checkEachOnce(t *testing.T, texts []string, n int) {
	t.Helper()
	all := strings.Join(texts, "\n")
	for i := range n {
		if c := strings.Count(all, fmt.Sprintf("saker test event %02d", i)); c != 1 {
			t.Errorf("event %02d delivered %d times", i, c)
		}
	}
}
