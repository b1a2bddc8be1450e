package gcp

import (
	"context"
	"net/http"
	"testing"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

// BenchmarkPubSubBatch: one Publish of 100 messages to pstest over gRPC; ns/op divided by
// 100 is the cost of an event (the client's and the in-process fake's together).
func BenchmarkPubSubBatch(b *testing.B) {
	srv := pstest.NewServerWithAddress("127.0.0.1:0")
	defer srv.Close()
	if _, err := srv.GServer.CreateTopic(context.Background(), &pb.Topic{Name: fullTopic}); err != nil {
		b.Fatal(err)
	}
	p, err := NewPubSub(pubsubConfig("http://"+srv.Addr), outputs.Env{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	evs := numbered(100)
	b.ResetTimer()
	for b.Loop() {
		if err := p.SendBatch(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
		srv.ClearMessages()
	}
}

// BenchmarkChronicleSend: one logs.import of one event to a local endpoint that reads and
// discards the body.
func BenchmarkChronicleSend(b *testing.B) {
	srv := posttest.Server(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = http.MaxBytesReader(w, r.Body, 1<<20).Read(make([]byte, 1<<16))
	}))
	c, err := NewChronicle(chronicleConfig(srv.URL, ""), outputs.Env{})
	if err != nil {
		b.Fatal(err)
	}
	ev := numbered(1)[0]
	for b.Loop() {
		if err := c.Send(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
}
