package gcp

import (
	"context"
	"encoding/base64"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/config"
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/falcopost/posttest"
)

func gcpSpecs(t *testing.T) map[string]outputs.Spec {
	t.Helper()
	specs := map[string]outputs.Spec{}
	for _, s := range outputs.All() {
		if s.Section == "gcp" {
			specs[s.Name] = s
		}
	}
	want := map[string]string{namePubSub: "gcp.pubsub", nameStorage: "gcp.storage",
		nameCloudFunctions: "gcp.cloudfunctions", nameChronicle: "gcp.chronicle"}
	if len(specs) != len(want) {
		t.Fatalf("registered gcp specs = %v", specs)
	}
	for name, path := range want {
		if specs[name].PolicyPath != path {
			t.Errorf("%s: policy path %q, want %q", name, specs[name].PolicyPath, path)
		}
	}
	return specs
}

// TestEnvOnly: falcosidekick's environment variables alone configure and enable each output
// (map values as k:v,k2:v2), and nothing else is enabled.
func TestEnvOnly(t *testing.T) {
	environ := []string{
		"GCP_PUBSUB_PROJECTID=saker-test", "GCP_PUBSUB_TOPIC=falco-events", "GCP_PUBSUB_CUSTOMATTRIBUTES=cluster:prod-eu,team:secops",
		"GCP_PUBSUB_ENDPOINT=http://127.0.0.1:8085",
		"GCP_STORAGE_BUCKET=falco-alerts", "GCP_STORAGE_PREFIX=falco", "GCP_STORAGE_ENDPOINT=http://127.0.0.1:4443",
		"GCP_CLOUDFUNCTIONS_NAME=" + testFunction, "GCP_CLOUDFUNCTIONS_ENDPOINT=http://127.0.0.1:9000",
		"GCP_CHRONICLE_PROJECTID=saker-test", "GCP_CHRONICLE_INSTANCEID=" + testInstance, "GCP_CHRONICLE_REGION=europe",
		"GCP_CHRONICLE_ENDPOINT=http://127.0.0.1:9001",
	}
	for name, spec := range gcpSpecs(t) {
		cfg := spec.Config()
		if _, err := config.Load(config.Options{Environ: environ, Sections: []config.Section{{Path: "gcp", Target: cfg}}}); err != nil {
			t.Fatalf("%s: load: %v", name, err)
		}
		if !spec.Enabled(cfg) {
			t.Errorf("%s not enabled by the environment", name)
		}
		c := cfg.(*Config)
		if c.PubSub.CustomAttributes["team"] != "secops" || c.Storage.Prefix != "falco" || c.Chronicle.LogType != "FALCO_IDS" {
			t.Errorf("%s: config read from the environment: %+v", name, c)
		}
		out, err := spec.Build(cfg, outputs.Env{})
		if err != nil {
			t.Fatalf("%s: build: %v", name, err)
		}
		if cl, ok := out.(interface{ Close() error }); ok {
			_ = cl.Close()
		}
	}
	for name, spec := range gcpSpecs(t) {
		if spec.Enabled(defaults()) {
			t.Errorf("%s enabled by the defaults", name)
		}
	}
}

// TestFalcosidekickExampleConfig: falcosidekick's config_example.yaml gcp section (every
// key, empty values) loads without a warning and enables nothing.
func TestFalcosidekickExampleConfig(t *testing.T) {
	file := t.TempDir() + "/config.yaml"
	yaml := `gcp:
  credentials: ""
  pubsub:
    projectid: ""
    topic: ""
    customAttributes:
      key: value
  storage:
    prefix: ""
    bucket: ""
  cloudfunctions:
    name: ""
  chronicle:
    projectid: ""
    instanceid: ""
    region: ""
    logtype: "FALCO_IDS"
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := defaults()
	res, err := config.Load(config.Options{File: file, Sections: []config.Section{{Path: "gcp", Target: cfg}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range res.Warnings {
		if strings.Contains(w, "gcp.pubsub") || strings.Contains(w, "gcp.storage") || strings.Contains(w, "gcp.chronicle") ||
			strings.Contains(w, "gcp.cloudfunctions") || strings.Contains(w, "gcp.credentials") {
			t.Errorf("warning: %s", w)
		}
	}
	if cfg.PubSub.CustomAttributes["key"] != "value" {
		t.Errorf("customAttributes (falcosidekick's spelling) not read: %v", cfg.PubSub.CustomAttributes)
	}
}

func TestValidate(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte(`{"type":"service_account","private_key":"SECRET"}`))
	for _, tc := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Credentials = "SECRET not base64" }, "gcp.credentials must be the base64"},
		{func(c *Config) { c.Credentials = base64.StdEncoding.EncodeToString([]byte("SECRET")) }, "gcp.credentials decodes from base64 but not"},
		{func(c *Config) {
			c.Credentials = base64.StdEncoding.EncodeToString([]byte(`{"type":"client_credentials","secret":"SECRET"}`))
		}, `key file type "client_credentials" is not supported`},
		{func(c *Config) { c.PubSub.ProjectID = "saker-test" }, "gcp.pubsub.topic is empty"},
		{func(c *Config) { c.PubSub.Topic = "falco" }, "gcp.pubsub.projectid is empty"},
		{func(c *Config) { c.PubSub.ProjectID, c.PubSub.Topic = "Saker_Test", "falco" }, "gcp.pubsub.projectid"},
		{func(c *Config) { c.PubSub.ProjectID, c.PubSub.Topic = "saker-test", "projects/saker-test/topics/falco" }, "topic ID only"},
		{func(c *Config) { c.PubSub.ProjectID, c.PubSub.Topic = "saker-test", "google-x" }, "gcp.pubsub.topic"},
		{func(c *Config) { c.PubSub.CustomAttributes = map[string]string{"googclient": "x"} }, "reserved"},
		{func(c *Config) { c.PubSub.Endpoint = "grpc://host:1" }, "gcp.pubsub.endpoint"},
		{func(c *Config) { c.PubSub.Endpoint = "localhost" }, "gcp.pubsub.endpoint"},
		{func(c *Config) { c.Credentials, c.PubSub.Endpoint = key, "http://127.0.0.1:8085" }, "in clear"},
		{func(c *Config) { c.Storage.Bucket = "gs://falco" }, "gcp.storage.bucket"},
		{func(c *Config) { c.Storage.Endpoint = "127.0.0.1:4443" }, "gcp.storage.endpoint"},
		{func(c *Config) { c.CloudFunctions.Name = "falco-handler" }, "gcp.cloudfunctions.name"},
		{func(c *Config) { c.CloudFunctions.Endpoint = "ftp://x" }, "gcp.cloudfunctions.endpoint"},
		{func(c *Config) { c.Chronicle.ProjectID, c.Chronicle.InstanceID = "p", "i" }, "gcp.chronicle.region is empty"},
		{func(c *Config) {
			c.Chronicle.ProjectID, c.Chronicle.InstanceID, c.Chronicle.Region = "p", "i/../x", "us"
		}, "gcp.chronicle.instanceid"},
		{func(c *Config) { c.Chronicle.Endpoint = "chronicle" }, "gcp.chronicle.endpoint"},
	} {
		c := defaults()
		tc.mutate(c)
		posttest.Refused(t, c.Validate(), tc.want)
	}
	c := defaults()
	c.Credentials = key + "\n" // base64 as `base64 key.json` prints it, wrapped
	if err := c.Validate(); err != nil {
		t.Errorf("a wrapped base64 key: %v", err)
	}
}

// TestSecrets: gcp.credentials is redacted (config check, logs, errors).
func TestSecrets(t *testing.T) {
	c := defaults()
	c.Credentials = "c2VjcmV0LWtleQ=="
	if !slices.Contains(outputs.Secrets(c), c.Credentials) {
		t.Errorf("Secrets() = %v, want gcp.credentials", outputs.Secrets(c))
	}
}

// TestHTTPOutputsDeadline: against a service that never answers, each HTTP output's Send
// returns at the attempt's deadline with a transient error.
func TestHTTPOutputsDeadline(t *testing.T) {
	srv := hangingServer(t)
	for name, out := range map[string]delivery.Sender{
		nameStorage:        newStorage(t, storageConfig(srv.URL, "falco")),
		nameCloudFunctions: functionsOutput(t, srv.URL, ""),
		nameChronicle:      chronicleOutput(t, srv.URL, ""),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := out.Send(ctx, &event.Event{Rule: "r", Output: "o", Priority: event.Notice, Time: time.Now()})
		cancel()
		if took := time.Since(start); err == nil || delivery.IsPermanent(err) || took > 2*time.Second {
			t.Errorf("%s: Send = %v after %s, want a transient error at the 300ms deadline", name, err, took)
		}
	}
}
