package aws

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/config"
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// TestYandexThroughPeers configures the yandex section only through falcosidekick's
// environment variables, with the endpoints pointed at versitygw (serving Yandex's region,
// checking the signature) and kinesalite, and reads back what yandexs3 and
// yandexdatastreams wrote.
func TestYandexThroughPeers(t *testing.T) {
	g := startVersitygw(t, 0, "", "ru-central1")
	g.createBucket(t, "yandex-falco")
	k := startKinesalite(t, 0, "")
	k.createStream(t, "yds-falco", 1)
	environ := []string{"YANDEX_ACCESSKEYID=" + gwAccess, "YANDEX_SECRETACCESSKEY=" + gwSecret,
		"YANDEX_S3_ENDPOINT=" + g.URL, "YANDEX_S3_BUCKET=yandex-falco", "YANDEX_S3_PREFIX=events",
		"YANDEX_DATASTREAMS_ENDPOINT=" + k.URL, "YANDEX_DATASTREAMS_STREAMNAME=yds-falco"}
	ev := testEvent("yandex rule", event.Critical)
	for _, name := range []string{nameYandexS3, nameYandexYDS} {
		out := buildFromEnv(t, name, environ)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := out.(delivery.Sender).Send(ctx, ev); err != nil {
			t.Fatalf("%s: Send: %v", name, err)
		}
		cancel()
	}
	objs := g.objects(t, "yandex-falco", "events/")
	if len(objs) != 1 {
		t.Fatalf("%d objects under events/, want 1", len(objs))
	}
	for key, body := range objs {
		if string(body) != string(ev.JSON()) || !strings.HasPrefix(key, "events/"+time.Now().Format("2006-01-02")[:4]) {
			t.Errorf("object %s = %s", key, body)
		}
	}
	recs := k.records(t, "yds-falco")
	if len(recs) != 1 || string(recs[0].Data) != string(ev.JSON()) {
		t.Fatalf("records = %v, want the event once", recs)
	}
}

// buildFromEnv loads the section of the output name from environ alone (as a container
// configured with falcosidekick's variables) and builds the output, which must be enabled.
func buildFromEnv(t *testing.T, name string, environ []string) delivery.Output {
	t.Helper()
	for _, spec := range outputs.All() {
		if spec.Name != name {
			continue
		}
		cfg := spec.Config()
		if _, err := config.Load(config.Options{Environ: environ, Sections: []config.Section{{Path: spec.Section, Target: cfg}}}); err != nil {
			t.Fatalf("%s: load: %v", name, err)
		}
		if !spec.Enabled(cfg) {
			t.Fatalf("%s not enabled by %v", name, environ)
		}
		out, err := spec.Build(cfg, testEnv())
		if err != nil {
			t.Fatalf("%s: build: %v", name, err)
		}
		return out
	}
	t.Fatalf("output %s not registered", name)
	return nil
}

// TestEnvOnlyNewAWSOutputs configures awss3, awskinesis and awscloudwatchlogs with
// falcosidekick's environment variables only and delivers one event to each.
func TestEnvOnlyNewAWSOutputs(t *testing.T) {
	g := startVersitygw(t, 0, "", "")
	g.createBucket(t, "env-bucket")
	k := startKinesalite(t, 0, "")
	k.createStream(t, "env-stream", 1)
	logs := newFakeLogs("env-group")
	srv := serveLogs(t, logs)
	environ := []string{"AWS_REGION=us-east-1", "AWS_ACCESSKEYID=" + gwAccess, "AWS_SECRETACCESSKEY=" + gwSecret,
		"AWS_CHECKIDENTITY=false", "AWS_S3_BUCKET=env-bucket", "AWS_S3_ENDPOINT=" + g.URL,
		"AWS_KINESIS_STREAMNAME=env-stream", "AWS_KINESIS_ENDPOINT=" + k.URL,
		"AWS_CLOUDWATCHLOGS_LOGGROUP=env-group", "AWS_CLOUDWATCHLOGS_ENDPOINT=" + srv.URL}
	ev := testEvent("env rule", event.Error)
	ev.Time = time.Now() // CloudWatch Logs refuses events older than 14 days
	for _, name := range []string{nameS3, nameKinesis, nameCloudWatchLogs} {
		out := buildFromEnv(t, name, environ)
		if err := out.(delivery.Sender).Send(context.Background(), ev); err != nil {
			t.Fatalf("%s: Send: %v", name, err)
		}
	}
	if objs := g.objects(t, "env-bucket", "falco/"); len(objs) != 1 {
		t.Errorf("%d objects, want 1", len(objs))
	}
	if recs := k.records(t, "env-stream"); len(recs) != 1 {
		t.Errorf("%d records, want 1", len(recs))
	}
	if got := logs.events("env-group", cwlDefaultStream); len(got) != 1 {
		t.Errorf("%d log events, want 1", len(got))
	}
}

func TestYandexDefaultsAndValidate(t *testing.T) {
	d := yandexDefaults()
	if d.Region != "ru-central1" || d.S3.Endpoint != "https://storage.yandexcloud.net" || d.S3.Prefix != "falco" ||
		d.DataStreams.Endpoint != "https://yds.serverless.yandexcloud.net" {
		t.Errorf("defaults differ from falcosidekick's: %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("defaults (no output enabled) invalid: %v", err)
	}
	for _, tc := range []struct {
		mutate func(*YandexConfig)
		key    string
	}{
		{func(c *YandexConfig) { c.S3.Bucket = "b" }, "yandex.accesskeyid"},
		{func(c *YandexConfig) { c.AccessKeyID = "id" }, "yandex.secretaccesskey"},
		{func(c *YandexConfig) { c.S3.Endpoint = "storage.yandexcloud.net" }, "yandex.s3.endpoint"},
		{func(c *YandexConfig) { c.DataStreams.Endpoint = "" }, "yandex.datastreams.endpoint"},
		{func(c *YandexConfig) {
			c.AccessKeyID, c.SecretAccessKey, c.DataStreams.StreamName = "id", "s", "bad name"
		}, "yandex.datastreams.streamname"},
		{func(c *YandexConfig) { c.Region = "" }, "yandex.region"},
	} {
		c := yandexDefaults()
		tc.mutate(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("Validate() = %v, want an error naming %s", err, tc.key)
		}
	}
	c := yandexDefaults()
	c.AccessKeyID, c.SecretAccessKey, c.DataStreams.StreamName = "id", "secret", "/ru-central1/b1g/etn/falco"
	if err := c.Validate(); err != nil {
		t.Errorf("a Yandex stream path must be accepted: %v", err)
	}
}

// TestNewKeysValidateAndRedact: the new aws keys name themselves in errors, and the
// secrets of the yandex section are redacted like aws's.
func TestNewKeysValidateAndRedact(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*Config)
		key    string
	}{
		{func(c *Config) { c.S3.Bucket = "a/b" }, "aws.s3.bucket"},
		{func(c *Config) { c.S3.ObjectCannedACL = "everyone" }, "aws.s3.objectcannedacl"},
		{func(c *Config) { c.S3.Endpoint = "minio:9000" }, "aws.s3.endpoint"},
		{func(c *Config) { c.CloudWatchLogs.LogGroup = "bad group!" }, "aws.cloudwatchlogs.loggroup"},
		{func(c *Config) { c.CloudWatchLogs.LogStream = "a:b" }, "aws.cloudwatchlogs.logstream"},
		{func(c *Config) { c.Kinesis.StreamName = "a b" }, "aws.kinesis.streamname"},
		{func(c *Config) { c.Kinesis.Endpoint = "ftp://x" }, "aws.kinesis.endpoint"},
	} {
		c := defaults()
		tc.mutate(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("Validate() = %v, want an error naming %s", err, tc.key)
		}
	}
	c := defaults()
	c.S3.ObjectCannedACL = "PRIVATE"
	if p, err := c.parse(); err != nil || p.S3.ObjectCannedACL != "private" {
		t.Errorf("canned ACL not normalised: %v %q", err, p.S3.ObjectCannedACL)
	}
	secret := map[string]bool{}
	for _, k := range (config.Section{Path: "yandex", Target: yandexDefaults()}).Keys() {
		secret[k.Path] = k.Secret
	}
	if !secret["yandex.secretaccesskey"] || secret["yandex.accesskeyid"] {
		t.Errorf("yandex secrets = %v, want only yandex.secretaccesskey", secret)
	}
}
