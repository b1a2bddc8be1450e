package gcp

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"cloud.google.com/go/auth"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// Pub/Sub takes 1000 messages and 10 MB per Publish call; saker's batches stay well below.
const (
	pubsubBatch      = 100
	pubsubBatchBytes = 1 << 20
	// pubsubMaxBatch bounds one call whatever gcp.pubsub.batch.maxevents says.
	pubsubMaxBatch = 1000
)

// pubsubEndpoint is Google's Pub/Sub gRPC endpoint.
const pubsubEndpoint = "pubsub.googleapis.com:443"

// PubSub is the gcppubsub output: each event's Falco JSON as the data of one message, with
// gcp.pubsub.customattributes as its attributes, as falcosidekick publishes it. It calls the
// Publisher service's generated gRPC stub directly on one connection: the high-level client
// bundles messages in the background with its own timeouts and retries, which would hide each
// attempt's outcome and deadline from the delivery engine.
type PubSub struct {
	conn   *grpc.ClientConn
	client pb.PublisherClient
	topic  string // projects/P/topics/T
	attrs  map[string]string
	creds  *auth.Credentials // nil: no authentication (an emulator)
	md     metadata.MD
	where  string
}

// NewPubSub builds the output from the gcp section. The connection is made lazily: a
// Pub/Sub that cannot be reached fails the first attempts, which the engine retries.
func NewPubSub(c *Config, env outputs.Env) (*PubSub, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.PubSub.ProjectID == "" || c.PubSub.Topic == "" {
		return nil, fmt.Errorf("gcp.pubsub.projectid and gcp.pubsub.topic must both be set")
	}
	target, plaintext := pubsubEndpoint, false
	override := c.PubSub.Endpoint
	switch {
	case override != "":
		target, plaintext, _ = grpcTarget(override) // checked by Validate
	case os.Getenv("PUBSUB_EMULATOR_HOST") != "":
		// As Google's client libraries: the emulator speaks plaintext and wants no token.
		override = os.Getenv("PUBSUB_EMULATOR_HOST")
		target, plaintext = override, true
		if c.Credentials != "" {
			return nil, fmt.Errorf("PUBSUB_EMULATOR_HOST=%s sends to a plaintext emulator and gcp.credentials is set: the token would travel in clear; unset one of them", override)
		}
	}
	creds, err := newCredentials(c, scopePubSub, override, env)
	if err != nil {
		return nil, err
	}
	dial := []grpc.DialOption{
		grpc.WithUserAgent(httpout.UserAgent),
		// After an outage, reconnect within seconds of the engine's next retry rather than
		// after gRPC's default backoff of up to two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 200 * time.Millisecond,
			Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second}, MinConnectTimeout: 5 * time.Second}),
	}
	if plaintext {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		tlsCfg, err := httpout.ClientTLS(true, false, env.TLS)
		if err != nil {
			return nil, err
		}
		dial = append(dial, grpc.WithTransportCredentials(grpccreds.NewTLS(tlsCfg)))
	}
	if creds != nil {
		dial = append(dial, grpc.WithPerRPCCredentials(tokenCreds{creds}))
	}
	conn, err := grpc.NewClient("dns:///"+target, dial...)
	if err != nil {
		return nil, fmt.Errorf("gcp.pubsub.endpoint %s: %w", target, err)
	}
	topic := "projects/" + c.PubSub.ProjectID + "/topics/" + c.PubSub.Topic
	return &PubSub{conn: conn, client: pb.NewPublisherClient(conn), topic: topic, attrs: c.PubSub.CustomAttributes,
		creds: creds, where: target,
		// The routing header Google's generated clients send with every Publish.
		md: metadata.Pairs("x-goog-request-params", "topic="+url.QueryEscape(topic))}, nil
}

// Name implements delivery.Output.
func (p *PubSub) Name() string { return namePubSub }

// Send publishes one message (batching turned off: gcp.pubsub.batch.maxevents 1).
func (p *PubSub) Send(ctx context.Context, ev *event.Event) error {
	return p.SendBatch(ctx, []*event.Event{ev})
}

// SendBatch publishes the events in Publish calls of at most 1000 messages. A Publish is
// all or nothing, so a failed call fails its events (the engine retries them); calls that
// succeeded before it are not repeated.
func (p *PubSub) SendBatch(ctx context.Context, evs []*event.Event) error {
	if p.creds != nil {
		// Fetched here, not only inside gRPC, so that a refused key stays a permanent error
		// (gRPC reports every credentials failure as Unavailable).
		if _, err := bearer(ctx, p.creds); err != nil {
			return err
		}
	}
	ctx = metadata.NewOutgoingContext(ctx, p.md)
	failed := map[int]error{}
	for start := 0; start < len(evs); start += pubsubMaxBatch {
		end := min(start+pubsubMaxBatch, len(evs))
		msgs := make([]*pb.PubsubMessage, 0, end-start)
		for _, ev := range evs[start:end] {
			msgs = append(msgs, &pb.PubsubMessage{Data: ev.JSON(), Attributes: p.attrs})
		}
		resp, err := p.client.Publish(ctx, &pb.PublishRequest{Topic: p.topic, Messages: msgs})
		if err == nil && len(resp.GetMessageIds()) != len(msgs) {
			err = fmt.Errorf("acknowledged %d of %d messages", len(resp.GetMessageIds()), len(msgs))
		}
		if err != nil {
			err = classifyGRPC(fmt.Sprintf("pubsub Publish to %s at %s", p.topic, p.where), err)
			if end-start == len(evs) {
				return err
			}
			for i := start; i < end; i++ {
				failed[i] = err
			}
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &delivery.BatchError{Failed: failed}
}

// Close closes the connection once the queue drained.
func (p *PubSub) Close() error { return p.conn.Close() }

// classifyGRPC maps a gRPC status onto the engine's retry decision: what the request itself
// got wrong (a missing topic, a refused token, an invalid message) is permanent; outages,
// throttling and deadlines are retried.
func classifyGRPC(what string, err error) error {
	st, ok := status.FromError(err)
	if !ok { // not from gRPC: transient
		return fmt.Errorf("%s: %w", what, err)
	}
	wrapped := fmt.Errorf("%s: %s: %s", what, st.Code(), st.Message())
	switch st.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated,
		codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented, codes.AlreadyExists:
		return delivery.Permanent(wrapped)
	default: // Unavailable, DeadlineExceeded, ResourceExhausted, Aborted, Internal, Unknown, Canceled
		return wrapped
	}
}

// tokenCreds puts the OAuth2 token on every RPC, fetched within the RPC's context.
type tokenCreds struct{ creds *auth.Credentials }

func (t tokenCreds) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	h, err := bearer(ctx, t.creds)
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": h}, nil
}

// RequireTransportSecurity refuses to send the token over a plaintext connection.
func (tokenCreds) RequireTransportSecurity() bool { return true }
