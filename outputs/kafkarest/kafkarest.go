// Package kafkarest produces each event's Falco JSON to a Kafka topic through the Confluent
// REST Proxy (binary embedded format: the value base64-encoded), as falcosidekick's Kafka
// REST output does.
package kafkarest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost"
)

// Config is the kafkarest.* section.
type Config struct {
	Address   string `koanf:"address" secret:"url" doc:"the topic's URL on the REST Proxy (http://kafka-rest:8082/topics/falco); setting it enables the output"`
	Version   int    `koanf:"version" doc:"REST Proxy API version of the content type: 2 or 1"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config { return &Config{Version: 2, CheckCert: true} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Address == "" {
		return nil
	}
	if err := outputs.ValidateURL("kafkarest.address", c.Address); err != nil {
		return err
	}
	if c.Version != 1 && c.Version != 2 {
		return fmt.Errorf("kafkarest.version must be 2 or 1, got %d", c.Version)
	}
	return nil
}

func init() {
	s := outputs.Define("kafkarest", "kafkarest", defaults,
		func(c *Config) bool { return c.Address != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "produce the event's Falco JSON to a Kafka topic through the Confluent REST Proxy"
	outputs.Register(s)
}

// New builds the output.
func New(c *Config, env outputs.Env) (*falcopost.Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return falcopost.New(falcopost.Options{Name: "kafkarest", URL: c.Address, CheckCert: c.CheckCert, MutualTLS: c.MutualTLS,
		ContentType: fmt.Sprintf("application/vnd.kafka.binary.v%d+json", c.Version),
		Body:        Body, Answer: checkOffsets}, env)
}

type record struct {
	Value string `json:"value"`
}

// Body is the produce request: one record whose value is the event's Falco JSON.
func Body(ev *event.Event) ([]byte, error) {
	return json.Marshal(struct {
		Records []record `json:"records"`
	}{[]record{{base64.StdEncoding.EncodeToString(ev.JSON())}}})
}

// checkOffsets reads the produce answer: the REST Proxy answers 200 even when a record was
// not written, with an error code in its offset (1: not retriable, 2: retriable).
// falcosidekick ignored them and lost those events.
func checkOffsets(body []byte) error {
	var resp struct {
		Offsets []struct {
			ErrorCode *int   `json:"error_code"`
			Error     string `json:"error"`
		} `json:"offsets"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return delivery.Permanent(fmt.Errorf("the answer is not a REST Proxy produce response: %w", err))
	}
	for _, o := range resp.Offsets {
		switch {
		case o.ErrorCode == nil:
		case *o.ErrorCode == 2:
			return fmt.Errorf("record not written (retriable, error code 2): %s", o.Error)
		default:
			return delivery.Permanent(fmt.Errorf("record not written (error code %d): %s", *o.ErrorCode, o.Error))
		}
	}
	if len(resp.Offsets) == 0 {
		return delivery.Permanent(errors.New("the answer lists no offset for the record"))
	}
	return nil
}
