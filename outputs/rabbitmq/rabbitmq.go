// Package rabbitmq publishes each event's Falco JSON to a RabbitMQ queue as falcosidekick's
// rabbitmq output does (default exchange, routing key = rabbitmq.queue, content type
// text/plain), over one connection and channel kept for the output's life. Unlike
// falcosidekick it waits for the broker's publisher confirm: a nack, a message no queue took
// (published mandatory) or a connection lost before the confirm is a failed delivery the
// engine retries, and a dropped connection is dialled again by the next send.
package rabbitmq

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/tlsclient"
)

// Config is the rabbitmq.* section.
type Config struct {
	URL   string `koanf:"url" secret:"true" doc:"amqp://user:password@host:5672/vhost (amqps:// for TLS); setting it enables the output"`
	Queue string `koanf:"queue" doc:"queue the events are routed to (through the default exchange); it must exist"`
}

func defaults() *Config { return &Config{} }

// Validate names the key at fault; the URL is never printed (it holds the password).
func (c *Config) Validate() error {
	if c.URL == "" {
		return nil
	}
	if _, err := amqp.ParseURI(c.URL); err != nil {
		return fmt.Errorf("rabbitmq.url must be an amqp:// or amqps:// URL (value not shown): %s", redactErr(err, c.URL))
	}
	if c.Queue == "" {
		return errors.New("rabbitmq.queue is required with rabbitmq.url")
	}
	return nil
}

func redactErr(err error, url string) string {
	return strings.ReplaceAll(err.Error(), url, httpout.Redact(url))
}

func init() {
	s := outputs.Define("rabbitmq", "rabbitmq", defaults,
		func(c *Config) bool { return c.URL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "publish the event's Falco JSON to a RabbitMQ queue, with publisher confirms"
	// A batch is published, then confirmed, in one round trip; each message stays its own.
	s.Batch = delivery.BatchPolicy{MaxEvents: 50, MaxBytes: 1 << 20, FlushInterval: 50 * time.Millisecond}
	outputs.Register(s)
}

// RabbitMQ is the output.
type RabbitMQ struct {
	url   string
	queue string
	tls   *tls.Config
	mu    sync.Mutex // guards sess
	sess  *session
	seq   atomic.Uint64
}

// session is one connection with its confirming channel, and the messages the broker
// returned as unroutable (by message id) until their publisher looks.
type session struct {
	conn     *amqp.Connection
	ch       *amqp.Channel
	returns  chan amqp.Return
	mu       sync.Mutex
	returned map[string]bool
}

// New checks the configuration; the connection is dialled by the first send, so a broker
// down at start-up only makes sends fail (transiently) until it is up.
func New(c *Config, env outputs.Env) (*RabbitMQ, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	r := &RabbitMQ{url: c.URL, queue: c.Queue}
	if strings.HasPrefix(strings.ToLower(c.URL), "amqps://") {
		u, _ := amqp.ParseURI(c.URL)
		var err error
		if r.tls, err = tlsclient.Config(u.Host, true, false, env.TLS); err != nil {
			return nil, fmt.Errorf("rabbitmq: %w", err)
		}
	}
	return r, nil
}

// Name implements delivery.Output.
func (r *RabbitMQ) Name() string { return "rabbitmq" }

// Send publishes the event and waits for the broker's confirm.
func (r *RabbitMQ) Send(ctx context.Context, ev *event.Event) error {
	err := r.SendBatch(ctx, []*event.Event{ev})
	var be *delivery.BatchError
	if errors.As(err, &be) {
		return be.Failed[0]
	}
	return err
}

// SendBatch publishes the events one after the other on the channel, then waits for their
// confirms: one round trip for the batch. Failures are reported per event.
func (r *RabbitMQ) SendBatch(ctx context.Context, evs []*event.Event) error {
	s, err := r.session(ctx)
	if err != nil {
		return err
	}
	type pending struct {
		dc *amqp.DeferredConfirmation
		id string
	}
	sent := make([]pending, 0, len(evs))
	failed := map[int]error{}
	for i, ev := range evs {
		id := ev.UUID
		if id == "" {
			id = "saker-" + strconv.FormatUint(r.seq.Add(1), 10)
		}
		dc, err := s.ch.PublishWithDeferredConfirmWithContext(ctx, "", r.queue, true, false, amqp.Publishing{
			ContentType: "text/plain", DeliveryMode: amqp.Persistent, MessageId: id, Body: ev.JSON()})
		if err != nil {
			if ctx.Err() == nil { // not the attempt's end: the connection failed
				r.drop(s)
			}
			err = fmt.Errorf("rabbitmq: publish to queue %s: %w", r.queue, err)
			for j := i; j < len(evs); j++ {
				failed[j] = err
			}
			break
		}
		sent = append(sent, pending{dc, id})
	}
	for i, p := range sent {
		if err := r.confirmed(ctx, s, p.dc, p.id); err != nil {
			failed[i] = err
		}
	}
	switch {
	case len(failed) == 0:
		return nil
	case len(evs) == 1:
		return failed[0]
	}
	return &delivery.BatchError{Failed: failed}
}

// confirmed waits for the confirm of message id.
func (r *RabbitMQ) confirmed(ctx context.Context, s *session, dc *amqp.DeferredConfirmation, id string) error {
	acked, err := dc.WaitContext(ctx)
	returned := s.wasReturned(id) // also drains the returns of a failed wait
	switch {
	case err != nil:
		return fmt.Errorf("rabbitmq: waiting for the confirm of queue %s: %w", r.queue, err)
	case !acked && s.ch.IsClosed():
		r.drop(s)
		return fmt.Errorf("rabbitmq: connection lost before the broker confirmed the message to queue %s", r.queue)
	case !acked:
		return fmt.Errorf("rabbitmq: the broker refused (nack) the message to queue %s", r.queue)
	case returned:
		return fmt.Errorf("rabbitmq: no queue %s took the message (unroutable: the queue does not exist)", r.queue)
	}
	return nil
}

// session returns the open session, dialling a new one when there is none or it closed.
func (r *RabbitMQ) session(ctx context.Context) (*session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sess != nil && !r.sess.ch.IsClosed() {
		return r.sess, nil
	}
	if r.sess != nil {
		r.sess.close()
		r.sess = nil
	}
	s, err := r.dial(ctx)
	if err != nil {
		return nil, err
	}
	r.sess = s
	return s, nil
}

// dial connects within ctx's deadline (TCP, TLS and the AMQP handshake) and opens a
// channel in confirm mode.
func (r *RabbitMQ) dial(ctx context.Context) (*session, error) {
	dial := func(network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(30 * time.Second)
		}
		// Cleared by amqp091 once the handshake is over.
		if err := c.SetDeadline(deadline); err != nil {
			_ = c.Close()
			return nil, err
		}
		return c, nil
	}
	conn, err := amqp.DialConfig(r.url, amqp.Config{Dial: dial, TLSClientConfig: r.tls,
		Properties: amqp.Table{"connection_name": "saker"}})
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: connect to %s: %s", httpout.Redact(r.url), redactErr(err, r.url))
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
		return nil, fmt.Errorf("rabbitmq: open a confirming channel: %w", err)
	}
	return &session{conn: conn, ch: ch, returns: ch.NotifyReturn(make(chan amqp.Return, returnsBuffer)), returned: map[string]bool{}}, nil
}

// returnsBuffer bounds the returned messages not yet looked at: every send drains them after
// its publish, so at most the sends in flight have one each.
const returnsBuffer = 1024

// wasReturned reports (once) whether the broker returned message id. amqp091 hands a
// basic.return to the returns channel before it processes the confirm that follows it, so
// once the confirm is in, the return is in the channel or, taken by another send, in the map.
func (s *session) wasReturned(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
drain:
	for {
		select {
		case ret, ok := <-s.returns:
			if !ok {
				break drain
			}
			s.returned[ret.MessageId] = true
		default:
			break drain
		}
	}
	if s.returned[id] {
		delete(s.returned, id)
		return true
	}
	return false
}

// drop closes s if it is still the current session, so the next send dials again.
func (r *RabbitMQ) drop(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sess == s {
		s.close()
		r.sess = nil
	}
}

// closeTimeout bounds the wait for the broker's close-ok: a hung broker must not hold a
// redial or the shutdown.
const closeTimeout = 2 * time.Second

func (s *session) close() { _ = s.conn.CloseDeadline(time.Now().Add(closeTimeout)) }

// Close closes the connection.
func (r *RabbitMQ) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sess != nil {
		r.sess.close()
		r.sess = nil
	}
	return nil
}
