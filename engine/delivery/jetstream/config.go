package jetstream

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

// SpoolConfig is the embedded mode: saker runs a NATS server in its own process, with
// JetStream file storage under Path, reached without a network listener.
type SpoolConfig struct {
	Path     string        `koanf:"path" doc:"directory of the embedded JetStream spool; setting it makes every accepted event durable (stored before the input answers 200, removed once every output it was routed to delivered it); empty: in-memory queues"`
	Listen   string        `koanf:"listen" doc:"host:port on which the embedded NATS server also accepts clients (to inspect the spool with the nats CLI); empty: no network listener"`
	MaxBytes int64         `koanf:"maxbytes" doc:"bytes the spool may hold on disk; when full the inputs answer 503 with Retry-After, whatever whenfull says (nothing is dropped from the spool)"`
	Sync     string        `koanf:"sync" doc:"when the spool is flushed to disk: always (fsync every write: survives power loss, slower) or an interval such as 2m (survives kill -9; power loss may lose the last interval)"`
	AckWait  time.Duration `koanf:"ackwait" doc:"how long the spool waits for an event handed to a worker to be settled before handing it out again; a live worker keeps extending it while it retries, and what a killed saker held is delivered again as soon as it restarts"`
}

// DefaultSpoolConfig is the spool's defaults.
func DefaultSpoolConfig() *SpoolConfig {
	return &SpoolConfig{MaxBytes: 1 << 30, Sync: "2m", AckWait: DefaultAckWait}
}

// syncPolicy parses Sync: always, or an interval.
func (c *SpoolConfig) syncPolicy() (always bool, every time.Duration, err error) {
	if c.Sync == "always" {
		return true, 0, nil
	}
	d, err := time.ParseDuration(c.Sync)
	if err != nil || d <= 0 {
		return false, 0, fmt.Errorf("spool.sync must be always or a positive duration such as 2m, got %q", c.Sync)
	}
	return false, d, nil
}

// Validate names the first invalid key.
func (c *SpoolConfig) Validate() error {
	if c.MaxBytes <= 0 {
		return fmt.Errorf("spool.maxbytes must be positive, got %d", c.MaxBytes)
	}
	if c.AckWait < time.Second {
		return fmt.Errorf("spool.ackwait must be at least 1s, got %s", c.AckWait)
	}
	if _, _, err := c.syncPolicy(); err != nil {
		return err
	}
	if c.Listen != "" {
		if _, _, err := splitListen(c.Listen); err != nil {
			return err
		}
	}
	return nil
}

func splitListen(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("spool.listen %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("spool.listen %q: port must be 0-65535", addr)
	}
	return host, p, nil
}

// ExternalConfig is the external mode: saker connects to a NATS server (or cluster) with
// JetStream; every replica shares the stream and each output's durable consumer.
type ExternalConfig struct {
	URL       string        `koanf:"url" doc:"NATS server URL(s), comma-separated (nats://host:4222); setting it makes delivery durable on that server's JetStream, shared by every saker replica"`
	Stream    string        `koanf:"stream" doc:"name of the JetStream stream (and prefix of its subjects); replicas sharing it share the work"`
	MaxBytes  int64         `koanf:"maxbytes" doc:"bytes the stream may hold; when full the inputs answer 503 with Retry-After, whatever whenfull says (nothing is dropped from the stream)"`
	Replicas  int           `koanf:"replicas" doc:"copies of the stream kept by a NATS cluster (1, 3 or 5)"`
	CredsFile string        `koanf:"credsfile" doc:"NATS credentials file (JWT and nkey seed)"`
	NKeyFile  string        `koanf:"nkeyfile" doc:"file holding an nkey seed to authenticate with"`
	User      string        `koanf:"user" doc:"user name to authenticate with"`
	Password  string        `koanf:"password" secret:"true" doc:"password to authenticate with"`
	AckWait   time.Duration `koanf:"ackwait" doc:"how long the events a dead replica was delivering wait before another replica delivers them (a live worker keeps extending it while it retries)"`
	TLS       ClientTLS     `koanf:"tls"`
}

// ClientTLS is the TLS side of the connection to an external NATS server.
type ClientTLS struct {
	CACertFile string `koanf:"cacertfile" doc:"CA that signed the NATS server's certificate"`
	CertFile   string `koanf:"certfile" doc:"client certificate, when the server requires one"`
	KeyFile    string `koanf:"keyfile" doc:"client key"`
}

// DefaultExternalConfig is the external mode's defaults.
func DefaultExternalConfig() *ExternalConfig {
	return &ExternalConfig{Stream: DefaultStream, MaxBytes: 1 << 30, Replicas: 1, AckWait: DefaultAckWait}
}

// Validate names the first invalid key.
func (c *ExternalConfig) Validate() error {
	switch {
	case c.MaxBytes <= 0:
		return fmt.Errorf("bus.jetstream.maxbytes must be positive, got %d", c.MaxBytes)
	case c.AckWait < time.Second:
		return fmt.Errorf("bus.jetstream.ackwait must be at least 1s, got %s", c.AckWait)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("bus.jetstream.replicas must be 1-5, got %d", c.Replicas)
	case !validStreamName(c.Stream):
		return fmt.Errorf("bus.jetstream.stream %q: use letters, digits, - and _ only", c.Stream)
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		return fmt.Errorf("bus.jetstream.tls.certfile and bus.jetstream.tls.keyfile go together")
	}
	return nil
}

// DefaultAckWait is how long the server waits for an acknowledgement before handing an event
// to another worker or replica, unless ackwait says otherwise. A live worker extends it every
// third of it while it retries, so it only bounds how late a dead holder's events come back.
const DefaultAckWait = 15 * time.Second

// DefaultStream is the stream's name unless bus.jetstream.stream says otherwise.
const DefaultStream = "saker"

func validStreamName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
