// Package azure sends events to Azure Event Hubs (falcosidekick's azure.eventhub output)
// through the hub's Kafka endpoint, <namespace>.servicebus.windows.net:9093, with SASL PLAIN
// and the namespace's or hub's connection string, using the same producer as the kafka
// output (outputs/internal/kafkaprod). Each event's Falco JSON is the body of one event, as
// falcosidekick sends it.
//
// falcosidekick authenticated with Azure AD (DefaultAzureCredential: pod or workload
// identity, a service principal from AZURE_* variables). saker does not: it needs
// azure.eventhub.connectionstring, and `config check` says so when it is missing.
package azure

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/kafkaprod"
	"github.com/saker-dev/saker/outputs/internal/tlsclient"
)

// Name is falcosidekick's metrics destination for the output.
const Name = "azureeventhub"

// kafkaPort is the port of the Event Hubs Kafka endpoint.
const kafkaPort = "9093"

// EventHub is the azure.eventhub.* section.
type EventHub struct {
	Name             string `koanf:"name" doc:"event hub (the Kafka topic); setting it enables the output"`
	Namespace        string `koanf:"namespace" doc:"Event Hubs namespace: its name (myns) or host name (myns.servicebus.windows.net); default: the connection string's Endpoint"`
	ConnectionString string `koanf:"connectionstring" secret:"true" doc:"connection string of the namespace or the hub (Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...), a shared access policy with Send rights; required (saker addition: managed identity is not supported)"`
	Endpoint         string `koanf:"endpoint" doc:"host:port of the Kafka endpoint, replacing <namespace>:9093 (a proxy, a test broker; saker addition)"`
}

// Config is the azure.* section: the event hub and falcosidekick's Azure identity keys,
// accepted so that its configuration loads, and refused when they are the only credential.
type Config struct {
	EventHub                 EventHub `koanf:"eventhub"`
	PodIdentityClientID      string   `koanf:"podidentityclientid" doc:"falcosidekick's AAD pod identity client ID: not supported, set azure.eventhub.connectionstring"`
	PodIdentityName          string   `koanf:"podidentityname" doc:"falcosidekick's AAD pod identity name: not supported"`
	WorkloadIdentityClientID string   `koanf:"workloadidentityclientid" doc:"falcosidekick's workload identity client ID: not supported"`
	ResourceGroupName        string   `koanf:"resourcegroupname" doc:"falcosidekick's Helm chart's resource group, for the pod identity: not used"`
	SubscriptionID           string   `koanf:"subscriptionid" doc:"falcosidekick's Helm chart's subscription, for the pod identity: not used"`
}

func defaults() *Config { return &Config{} }

// errIdentity explains the one credential saker takes.
const errIdentity = "azure.eventhub.connectionstring is required: saker sends through the Event Hubs Kafka endpoint with a shared access connection string; " +
	"managed identity is not supported (Azure AD: pod or workload identity, azure.podidentityclientid, AZURE_CLIENT_ID)"

// Validate names the key at fault.
func (c *Config) Validate() error {
	h := c.EventHub
	if h.Name == "" {
		return nil
	}
	if h.ConnectionString == "" {
		if c.PodIdentityClientID != "" || c.PodIdentityName != "" || c.WorkloadIdentityClientID != "" {
			return errors.New(errIdentity + "; the identity keys set are ignored")
		}
		return errors.New(errIdentity)
	}
	cs, err := parseConnectionString(h.ConnectionString)
	if err != nil {
		return err
	}
	if cs.entityPath != "" && cs.entityPath != h.Name {
		return fmt.Errorf("azure.eventhub.connectionstring is for event hub %q, not azure.eventhub.name %q", cs.entityPath, h.Name)
	}
	if h.Endpoint != "" {
		if _, _, err := net.SplitHostPort(h.Endpoint); err != nil || strings.Contains(h.Endpoint, "/") {
			return fmt.Errorf("azure.eventhub.endpoint must be host:port, got %q", h.Endpoint)
		}
		return nil
	}
	if h.Namespace == "" && cs.host == "" {
		return errors.New("azure.eventhub.namespace is required when the connection string has no Endpoint")
	}
	return nil
}

// broker is the Kafka endpoint: endpoint, else the namespace's host on port 9093.
func (c *Config) broker() string {
	h := c.EventHub
	if h.Endpoint != "" {
		return h.Endpoint
	}
	host := strings.TrimSpace(h.Namespace)
	if host == "" {
		cs, _ := parseConnectionString(h.ConnectionString)
		host = cs.host
	}
	if !strings.Contains(host, ".") {
		host += ".servicebus.windows.net"
	}
	return net.JoinHostPort(host, kafkaPort)
}

type connectionString struct{ host, entityPath string }

// parseConnectionString reads the parts saker needs from an Event Hubs connection string;
// errors never show the value (it holds the key).
func parseConnectionString(s string) (connectionString, error) {
	var cs connectionString
	var hasKey bool
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "endpoint":
			v = strings.TrimSuffix(strings.TrimPrefix(v, "sb://"), "/")
			cs.host, _, _ = strings.Cut(v, "/")
		case "entitypath":
			cs.entityPath = v
		case "sharedaccesskey", "sharedaccesssignature":
			hasKey = v != ""
		}
	}
	if !hasKey {
		return cs, errors.New("azure.eventhub.connectionstring must be a shared access connection string (Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...; value not shown)")
	}
	return cs, nil
}

func init() {
	s := outputs.Define(Name, "azure", defaults,
		func(c *Config) bool { return c.EventHub.Name != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.PolicyPath = "azure.eventhub"
	s.Doc = "send the event's Falco JSON to an Azure event hub (Kafka endpoint, connection string)"
	s.Batch = kafkaprod.Batch
	outputs.Register(s)
}

// New builds the output; it connects on the first send.
func New(c *Config, env outputs.Env) (*kafkaprod.Producer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	mech, err := kafkaprod.Mechanism("azure.eventhub", "PLAIN", "$ConnectionString", c.EventHub.ConnectionString)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := tlsclient.Config("", true, false, env.TLS)
	if err != nil {
		return nil, fmt.Errorf("azure.eventhub: %w", err)
	}
	// Event Hubs' Kafka endpoint does not offer the idempotent producer on every tier.
	return kafkaprod.New(kafkaprod.Options{Name: Name, Section: "azure.eventhub", Brokers: []string{c.broker()},
		Topic: c.EventHub.Name, SASL: mech, TLS: tlsCfg, Acks: "ALL", NoIdempotence: true, Timeout: env.Policy.Timeout, Log: env.Logger()})
}
