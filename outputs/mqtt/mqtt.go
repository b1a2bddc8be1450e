// Package mqtt publishes each event's Falco JSON to an MQTT broker (MQTT 3.1.1) as
// falcosidekick's mqtt output does (same keys, topic falco/events by default, same payload),
// with eclipse/paho.mqtt.golang, the client falcosidekick uses. Unlike falcosidekick, which
// connected and disconnected for every event, saker keeps one connection and dials it again
// itself when a send finds it lost: paho's automatic reconnection is off, because it resends
// stored messages behind the engine's back (and races while doing so, paho issue #703) and
// reports a QoS 0 publish made while reconnecting as sent without sending it. A lost
// connection fails the publishes in flight at once; the engine retries them.
package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/tlsclient"
)

// Config is the mqtt.* section.
type Config struct {
	Broker    string `koanf:"broker" doc:"broker URL: tcp://host:1883, ssl://host:8883 (also mqtt://, mqtts://, tls://, ws://, wss://); setting it enables the output"`
	Topic     string `koanf:"topic" doc:"topic the events are published to"`
	QOS       int    `koanf:"qos" doc:"0 (at most once: a message lost in a dropped connection is not noticed), 1 (the broker acknowledges; at least once) or 2 (exactly once)"`
	Retained  bool   `koanf:"retained" doc:"publish with the retain flag (the broker keeps the last event for new subscribers)"`
	User      string `koanf:"user" doc:"user name"`
	Password  string `koanf:"password" secret:"true" doc:"password"`
	CheckCert bool   `koanf:"checkcert" doc:"with ssl://, verify the broker's certificate"`
	MutualTLS bool   `koanf:"mutualtls" doc:"with ssl://, present the client certificate (mutualtlsclient.*; saker addition)"`
}

func defaults() *Config { return &Config{Topic: "falco/events", CheckCert: true} }

var schemes = map[string]bool{"tcp": true, "mqtt": true, "ssl": true, "tls": true, "mqtts": true, "tcps": true, "ws": true, "wss": true}

func secure(scheme string) bool {
	return scheme == "ssl" || scheme == "tls" || scheme == "mqtts" || scheme == "tcps" || scheme == "wss"
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Broker == "" {
		return nil
	}
	u, err := url.Parse(c.Broker)
	if err != nil || u.Host == "" || !schemes[strings.ToLower(u.Scheme)] {
		return fmt.Errorf("mqtt.broker must be a URL such as tcp://host:1883 or ssl://host:8883, got %q", httpout.Redact(c.Broker))
	}
	if c.Topic == "" || strings.ContainsAny(c.Topic, "+#\x00") {
		return fmt.Errorf("mqtt.topic must be a topic name without wildcards (+, #), got %q", c.Topic)
	}
	if c.QOS < 0 || c.QOS > 2 {
		return fmt.Errorf("mqtt.qos must be 0, 1 or 2, got %d", c.QOS)
	}
	if c.Password != "" && c.User == "" {
		return errors.New("mqtt.password requires mqtt.user")
	}
	return nil
}

func init() {
	s := outputs.Define("mqtt", "mqtt", defaults,
		func(c *Config) bool { return c.Broker != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "publish the event's Falco JSON to an MQTT topic (falco/events)"
	outputs.Register(s)
}

// MQTT is the output.
type MQTT struct {
	mu         sync.Mutex
	connecting paho.Token // the connection attempt in progress, if any
	cl         paho.Client
	topic      string
	qos        byte
	retained   bool
}

// New starts the connection in the background: a broker down at start-up only makes
// sends fail (transiently) until paho has connected.
func New(c *Config, env outputs.Env) (*MQTT, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	log := env.Logger()
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	o := paho.NewClientOptions().AddBroker(c.Broker).
		SetClientID("saker-" + hex.EncodeToString(id)).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			log.Warn("mqtt connection lost", "err", err)
		}).
		SetOnConnectHandler(func(paho.Client) { log.Debug("mqtt connected") })
	if c.User != "" {
		o.SetUsername(c.User).SetPassword(c.Password)
	}
	u, _ := url.Parse(c.Broker)
	if secure(strings.ToLower(u.Scheme)) {
		tlsCfg, err := tlsclient.Config(u.Hostname(), c.CheckCert, c.MutualTLS, env.TLS)
		if err != nil {
			return nil, fmt.Errorf("mqtt: %w", err)
		}
		o.SetTLSConfig(tlsCfg)
	}
	m := &MQTT{cl: paho.NewClient(o), topic: c.Topic, qos: byte(c.QOS), retained: c.Retained}
	m.connecting = m.cl.Connect() // in the background; the first send waits for it
	return m, nil
}

// Name implements delivery.Output.
func (m *MQTT) Name() string { return "mqtt" }

// connect makes sure the connection is open: it starts a connection attempt when none is in
// progress and waits for it within ctx.
func (m *MQTT) connect(ctx context.Context) error {
	if m.cl.IsConnectionOpen() {
		return nil
	}
	m.mu.Lock()
	if m.connecting == nil {
		m.connecting = m.cl.Connect()
	}
	tok := m.connecting
	m.mu.Unlock()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return fmt.Errorf("mqtt: connecting to the broker: %w", ctx.Err())
	}
	m.mu.Lock()
	if m.connecting == tok {
		m.connecting = nil // the next send after a failure or a loss tries again
	}
	m.mu.Unlock()
	if err := tok.Error(); err != nil {
		return fmt.Errorf("mqtt: connect to the broker: %w", err)
	}
	if !m.cl.IsConnectionOpen() {
		return errors.New("mqtt: the connection to the broker was lost")
	}
	return nil
}

// Send publishes the event: with QoS 1 or 2 it waits for the broker's acknowledgement, with
// QoS 0 until the message is written.
func (m *MQTT) Send(ctx context.Context, ev *event.Event) error {
	if err := m.connect(ctx); err != nil {
		return err
	}
	tok := m.cl.Publish(m.topic, m.qos, m.retained, ev.JSON())
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return fmt.Errorf("mqtt: publish to %s: no acknowledgement: %w", m.topic, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("mqtt: publish to %s: %w", m.topic, err)
	}
	return nil
}

// Close disconnects, leaving 250ms for publishes in flight.
func (m *MQTT) Close() error {
	m.cl.Disconnect(250)
	return nil
}
