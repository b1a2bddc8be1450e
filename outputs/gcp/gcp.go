// Package gcp holds saker's Google Cloud outputs that share falcosidekick's gcp.credentials:
// Pub/Sub (gcppubsub), Cloud Storage (gcpstorage), Cloud Functions (gcpcloudfunctions) and
// Google SecOps / Chronicle (gcpchronicle). Cloud Run (gcp.cloudrun) takes a bearer token of its
// own and lives in outputs/gcpcloudrun.
//
// Pub/Sub speaks gRPC (the only transport its Go client offers that pstest, the in-process
// fake, serves); the other three are small JSON APIs sent through saker's HTTP client, so they
// share its TLS policy, proxies and status classification and add no SDK to the binary. Tokens
// come from cloud.google.com/go/auth, whose Token(ctx) is bounded by the attempt's deadline.
// No client retries: the delivery engine does.
package gcp

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
)

// Config is the gcp.* section shared by the four outputs (gcp.cloudrun has its own package).
type Config struct {
	Credentials string `koanf:"credentials" secret:"true" doc:"base64 of a service account JSON key file (base64 -w0 key.json); empty: Application Default Credentials, or no authentication for an output whose endpoint override is set (an emulator)"`

	PubSub         PubSubConfig         `koanf:"pubsub"`
	Storage        StorageConfig        `koanf:"storage"`
	CloudFunctions CloudFunctionsConfig `koanf:"cloudfunctions"`
	Chronicle      ChronicleConfig      `koanf:"chronicle"`
}

// PubSubConfig is gcp.pubsub.*.
type PubSubConfig struct {
	ProjectID        string            `koanf:"projectid" doc:"project of the topic; with topic, enables the gcppubsub output"`
	Topic            string            `koanf:"topic" doc:"topic ID (not its full name); with projectid, enables the gcppubsub output"`
	CustomAttributes map[string]string `koanf:"customattributes" doc:"attributes added to every message (key:value,key2:value2 in the environment)"`
	Endpoint         string            `koanf:"endpoint" doc:"gRPC endpoint host:port (TLS), or http://host:port for a plaintext emulator such as pstest; default pubsub.googleapis.com:443, or PUBSUB_EMULATOR_HOST (plaintext) when that is set"`
}

// StorageConfig is gcp.storage.*.
type StorageConfig struct {
	Bucket   string `koanf:"bucket" doc:"bucket name; setting it enables the gcpstorage output"`
	Prefix   string `koanf:"prefix" doc:"object names are <prefix>/<YYYY-MM-DD>/<RFC 3339 time with nanoseconds>.json, as falcosidekick names them"`
	Endpoint string `koanf:"endpoint" doc:"JSON API base URL (fake-gcs-server, a proxy); default https://storage.googleapis.com, or http://$STORAGE_EMULATOR_HOST when that is set"`
}

// CloudFunctionsConfig is gcp.cloudfunctions.*.
type CloudFunctionsConfig struct {
	Name     string `koanf:"name" doc:"the function's full name, projects/PROJECT/locations/REGION/functions/NAME; setting it enables the gcpcloudfunctions output"`
	Endpoint string `koanf:"endpoint" doc:"Cloud Functions API base URL; default https://cloudfunctions.googleapis.com"`
}

// ChronicleConfig is gcp.chronicle.*.
type ChronicleConfig struct {
	ProjectID  string `koanf:"projectid" doc:"project of the Google SecOps (Chronicle) instance; with instanceid, enables the gcpchronicle output"`
	InstanceID string `koanf:"instanceid" doc:"the Chronicle instance (customer) ID; with projectid, enables the gcpchronicle output"`
	Region     string `koanf:"region" doc:"the instance's region (us, europe, europe-west12, ...), required"`
	LogType    string `koanf:"logtype" doc:"log type the events are imported as (its parser must exist in the instance)"`
	Endpoint   string `koanf:"endpoint" doc:"Chronicle API base URL; default https://chronicle.<region>.rep.googleapis.com"`
}

// defaults are falcosidekick's.
func defaults() *Config { return &Config{Chronicle: ChronicleConfig{LogType: "FALCO_IDS"}} }

// The outputs' names are falcosidekick's metric destinations, so dashboards keep working.
const (
	namePubSub         = "gcppubsub"
	nameStorage        = "gcpstorage"
	nameCloudFunctions = "gcpcloudfunctions"
	nameChronicle      = "gcpchronicle"
)

func (c *Config) pubsubOn() bool         { return c.PubSub.ProjectID != "" || c.PubSub.Topic != "" }
func (c *Config) storageOn() bool        { return c.Storage.Bucket != "" }
func (c *Config) cloudFunctionsOn() bool { return c.CloudFunctions.Name != "" }
func (c *Config) chronicleOn() bool {
	return c.Chronicle.ProjectID != "" || c.Chronicle.InstanceID != ""
}

func init() {
	register := func(name, policyPath, doc string, on func(*Config) bool, build func(*Config, outputs.Env) (delivery.Output, error),
		batch delivery.BatchPolicy) {
		s := outputs.Define(name, "gcp", defaults, on, build)
		s.PolicyPath, s.Doc, s.Batch = policyPath, doc, batch
		outputs.Register(s)
	}
	register(namePubSub, "gcp.pubsub", "publish each event's Falco JSON to a Google Cloud Pub/Sub topic (gRPC; batches of up to 100 messages per Publish call)",
		(*Config).pubsubOn, func(c *Config, env outputs.Env) (delivery.Output, error) { return NewPubSub(c, env) },
		delivery.BatchPolicy{MaxEvents: pubsubBatch, MaxBytes: pubsubBatchBytes, FlushInterval: 100 * time.Millisecond})
	register(nameStorage, "gcp.storage", "write each event's Falco JSON as an object in a Google Cloud Storage bucket",
		(*Config).storageOn, func(c *Config, env outputs.Env) (delivery.Output, error) { return NewStorage(c, env) },
		delivery.BatchPolicy{})
	register(nameCloudFunctions, "gcp.cloudfunctions", "call a Google Cloud Function (1st gen) with the event's Falco JSON through the Cloud Functions API",
		(*Config).cloudFunctionsOn, func(c *Config, env outputs.Env) (delivery.Output, error) { return NewCloudFunctions(c, env) },
		delivery.BatchPolicy{})
	register(nameChronicle, "gcp.chronicle", "import each event into Google SecOps (Chronicle) as a raw log of the configured log type",
		(*Config).chronicleOn, func(c *Config, env outputs.Env) (delivery.Output, error) { return NewChronicle(c, env) },
		delivery.BatchPolicy{})
}

// Validate names the key at fault. The outputs share the section, so it checks every key of
// the section, whichever outputs are enabled; it does not change c.
func (c *Config) Validate() error {
	if c.Credentials != "" {
		if _, _, err := decodeCredentials(c.Credentials); err != nil {
			return err
		}
	}
	if err := c.PubSub.validate(c.Credentials != ""); err != nil {
		return err
	}
	if err := c.Storage.validate(); err != nil {
		return err
	}
	if err := c.CloudFunctions.validate(); err != nil {
		return err
	}
	return c.Chronicle.validate()
}

// Pub/Sub's resource names: a project ID, a topic ID, attribute limits.
var (
	projectIDRe = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[a-z0-9.-]+:[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	topicIDRe   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$`)
)

func (p *PubSubConfig) validate(withCredentials bool) error {
	if p.ProjectID != "" || p.Topic != "" {
		switch {
		case p.ProjectID == "":
			return fmt.Errorf("gcp.pubsub.projectid is empty (gcp.pubsub.topic is set; both are needed)")
		case p.Topic == "":
			return fmt.Errorf("gcp.pubsub.topic is empty (gcp.pubsub.projectid is set; both are needed)")
		case !projectIDRe.MatchString(p.ProjectID):
			return fmt.Errorf("gcp.pubsub.projectid %q is not a project ID (6 to 30 lowercase letters, digits and hyphens)", p.ProjectID)
		case strings.HasPrefix(p.Topic, "projects/"):
			return fmt.Errorf("gcp.pubsub.topic %q is a full topic name: give the topic ID only (the part after /topics/)", p.Topic)
		case !topicIDRe.MatchString(p.Topic) || strings.HasPrefix(strings.ToLower(p.Topic), "goog"):
			return fmt.Errorf("gcp.pubsub.topic %q is not a topic ID (3 to 255 letters, digits and -_.~+%%, starting with a letter, not with goog)", p.Topic)
		}
	}
	if len(p.CustomAttributes) > 100 {
		return fmt.Errorf("gcp.pubsub.customattributes holds %d attributes; Pub/Sub takes 100 per message", len(p.CustomAttributes))
	}
	for k, v := range p.CustomAttributes {
		switch {
		case k == "" || len(k) > 256:
			return fmt.Errorf("gcp.pubsub.customattributes: attribute name %q must be 1 to 256 bytes", k)
		case strings.HasPrefix(strings.ToLower(k), "goog"):
			return fmt.Errorf("gcp.pubsub.customattributes: attribute name %q is reserved (names may not start with goog)", k)
		case len(v) > 1024:
			return fmt.Errorf("gcp.pubsub.customattributes: the value of %q is %d bytes; Pub/Sub takes 1024", k, len(v))
		}
	}
	if p.Endpoint == "" {
		return nil
	}
	target, plaintext, err := grpcTarget(p.Endpoint)
	if err != nil {
		return err
	}
	if plaintext && withCredentials {
		return fmt.Errorf("gcp.pubsub.endpoint %s is plaintext (http://) and gcp.credentials is set: the token would travel in clear; use host:port (TLS) or leave gcp.credentials empty for an emulator", target)
	}
	return nil
}

// grpcTarget reads gcp.pubsub.endpoint: host:port (TLS) or http://host:port (plaintext).
func grpcTarget(endpoint string) (target string, plaintext bool, err error) {
	target = endpoint
	switch {
	case strings.HasPrefix(endpoint, "http://"):
		target, plaintext = strings.TrimPrefix(endpoint, "http://"), true
	case strings.HasPrefix(endpoint, "https://"):
		target = strings.TrimPrefix(endpoint, "https://")
	case strings.Contains(endpoint, "://"):
		return "", false, fmt.Errorf("gcp.pubsub.endpoint %q: want host:port, https://host:port or http://host:port (plaintext)", endpoint)
	}
	target = strings.TrimSuffix(target, "/")
	if host, port, err := net.SplitHostPort(target); err != nil || host == "" || port == "" {
		return "", false, fmt.Errorf("gcp.pubsub.endpoint %q: want host:port, https://host:port or http://host:port (plaintext)", endpoint)
	}
	return target, plaintext, nil
}

// bucketRe is Cloud Storage's bucket naming rule (3-63 characters, or up to 222 with dots).
var bucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$`)

func (s *StorageConfig) validate() error {
	if s.Bucket != "" && !bucketRe.MatchString(s.Bucket) {
		return fmt.Errorf("gcp.storage.bucket %q is not a bucket name (lowercase letters, digits, -, _ and ., 3 to 222 characters; no gs:// prefix)", s.Bucket)
	}
	if s.Endpoint != "" {
		return outputs.ValidateURL("gcp.storage.endpoint", s.Endpoint)
	}
	return nil
}

// functionNameRe is the full name the Cloud Functions API addresses a function by.
var functionNameRe = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/functions/[^/]+$`)

func (f *CloudFunctionsConfig) validate() error {
	if f.Name != "" && !functionNameRe.MatchString(f.Name) {
		return fmt.Errorf("gcp.cloudfunctions.name %q must be the function's full name, projects/PROJECT/locations/REGION/functions/NAME", f.Name)
	}
	if f.Endpoint != "" {
		return outputs.ValidateURL("gcp.cloudfunctions.endpoint", f.Endpoint)
	}
	return nil
}

// pathSegmentRe keeps the values put into Chronicle's URL path to one safe segment.
var pathSegmentRe = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func (c *ChronicleConfig) validate() error {
	if c.ProjectID != "" || c.InstanceID != "" {
		for _, k := range []struct{ key, val string }{{"projectid", c.ProjectID}, {"instanceid", c.InstanceID},
			{"region", c.Region}, {"logtype", c.LogType}} {
			if k.val == "" {
				return fmt.Errorf("gcp.chronicle.%s is empty (gcp.chronicle.projectid, instanceid, region and logtype are all needed)", k.key)
			}
			if !pathSegmentRe.MatchString(k.val) {
				return fmt.Errorf("gcp.chronicle.%s %q holds characters other than letters, digits, '.', '_' and '-'", k.key, k.val)
			}
		}
	}
	if c.Endpoint != "" {
		return outputs.ValidateURL("gcp.chronicle.endpoint", c.Endpoint)
	}
	return nil
}
