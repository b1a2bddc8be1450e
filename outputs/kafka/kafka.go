// Package kafka produces each event's Falco JSON to an Apache Kafka topic, with
// falcosidekick's kafka.* keys, through one franz-go client (outputs/internal/kafkaprod).
// Unlike falcosidekick it waits for the brokers' acknowledgement of every batch by default
// (requiredacks ALL), so that a failed produce is retried by the delivery engine.
package kafka

import (
	"errors"
	"fmt"
	"strings"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/kafkaprod"
	"github.com/saker-dev/saker/outputs/internal/tlsclient"
)

// Config is the kafka.* section.
type Config struct {
	HostPort      string `koanf:"hostport" doc:"comma-separated bootstrap brokers host[:port] (port 9092 when omitted); setting it enables the output"`
	Topic         string `koanf:"topic" doc:"topic the events are produced to"`
	SASL          string `koanf:"sasl" doc:"SASL mechanism: PLAIN, SCRAM_SHA256 or SCRAM_SHA512; empty for none"`
	Username      string `koanf:"username" doc:"SASL user name"`
	Password      string `koanf:"password" secret:"true" doc:"SASL password"`
	TLS           bool   `koanf:"tls" doc:"connect to the brokers over TLS"`
	CheckCert     bool   `koanf:"checkcert" doc:"with tls, verify the brokers' certificates (saker addition)"`
	MutualTLS     bool   `koanf:"mutualtls" doc:"with tls, present the client certificate (mutualtlsclient.*; saker addition)"`
	RequiredAcks  string `koanf:"requiredacks" doc:"acknowledgements to wait for: ALL (in-sync replicas), ONE (leader) or NONE (none: a send cannot fail once written)"`
	Compression   string `koanf:"compression" doc:"NONE, GZIP, SNAPPY, LZ4 or ZSTD"`
	Balancer      string `koanf:"balancer" doc:"partitioning: round_robin, least_bytes, crc32, crc32_random, murmur2 or murmur2_random (records carry no key: the hash ones stick to a partition per batch)"`
	ClientID      string `koanf:"clientid" doc:"client.id sent to the brokers (default saker)"`
	TopicCreation bool   `koanf:"topiccreation" doc:"let the brokers create the topic when it does not exist"`
	Async         bool   `koanf:"async" doc:"accepted for compatibility and ignored: saker always waits for the acknowledgement (its queue makes sends asynchronous to the input)"`
}

func defaults() *Config {
	return &Config{RequiredAcks: "ALL", Compression: "NONE", Balancer: "round_robin", CheckCert: true}
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.HostPort) == "" {
		return nil
	}
	for _, b := range kafkaprod.Brokers(c.HostPort) {
		if strings.Contains(b, "://") || strings.Contains(b, "/") {
			return fmt.Errorf("kafka.hostport must list host:port pairs without scheme or path, got %q", b)
		}
	}
	if c.Topic == "" {
		return errors.New("kafka.topic is required with kafka.hostport")
	}
	if _, err := kafkaprod.Mechanism("kafka", c.SASL, c.Username, c.Password); err != nil {
		return err
	}
	if c.SASL != "" && c.Username == "" {
		return fmt.Errorf("kafka.username is required with kafka.sasl %s", c.SASL)
	}
	return kafkaprod.Check("kafka", c.RequiredAcks, c.Compression, c.Balancer)
}

func init() {
	s := outputs.Define("kafka", "kafka", defaults,
		func(c *Config) bool { return strings.TrimSpace(c.HostPort) != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "produce the event's Falco JSON to an Apache Kafka topic (batched, acknowledged)"
	s.Batch = kafkaprod.Batch
	outputs.Register(s)
}

// New builds the output; it connects on the first send.
func New(c *Config, env outputs.Env) (*kafkaprod.Producer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	mech, err := kafkaprod.Mechanism("kafka", c.SASL, c.Username, c.Password)
	if err != nil {
		return nil, err
	}
	o := kafkaprod.Options{Name: "kafka", Section: "kafka", Brokers: kafkaprod.Brokers(c.HostPort), Topic: c.Topic,
		SASL: mech, Acks: c.RequiredAcks, Compress: c.Compression, Balancer: c.Balancer, ClientID: c.ClientID,
		TopicCreation: c.TopicCreation, Timeout: env.Policy.Timeout, Log: env.Logger()}
	if c.TLS {
		// kgo sets the server name of each broker it dials.
		if o.TLS, err = tlsclient.Config("", c.CheckCert, c.MutualTLS, env.TLS); err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
	}
	if c.Async {
		env.Logger().Info("kafka.async is ignored: every batch waits for the brokers' acknowledgement; the delivery queue keeps inputs from waiting")
	}
	return kafkaprod.New(o)
}
