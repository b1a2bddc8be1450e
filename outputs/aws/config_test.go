package aws

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"

	"github.com/saker-dev/saker/config"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

func awsSpecs(t *testing.T) map[string]outputs.Spec {
	t.Helper()
	specs := map[string]outputs.Spec{}
	for _, s := range outputs.All() {
		if s.Section == "aws" {
			specs[s.Name] = s
		}
	}
	if len(specs) != 7 || specs[nameSecurityLake].PolicyPath != "aws.securitylake" || specs[nameSQS].PolicyPath != "aws.sqs" || specs[nameSNS].PolicyPath != "aws.sns" ||
		specs[nameLambda].PolicyPath != "aws.lambda" || specs[nameS3].PolicyPath != "aws.s3" ||
		specs[nameCloudWatchLogs].PolicyPath != "aws.cloudwatchlogs" || specs[nameKinesis].PolicyPath != "aws.kinesis" {
		t.Fatalf("registered aws specs = %v", specs)
	}
	if b := specs[nameSQS].Batch; b.MaxEvents != 10 || b.MaxBytes != 256<<10 {
		t.Errorf("awssqs batch defaults = %+v, want 10 events, 256 KiB", b)
	}
	return specs
}

// TestEnvOnly configures the outputs with exactly the variables the acceptance check sets
// (falcosidekick's names), through the config loader, and delivers to fauxqs and the RIE.
func TestEnvOnly(t *testing.T) {
	f := startFauxqs(t, 0, "")
	queue := f.createQueue(t, "falco")
	rie := startLambda(t, 0, "", "")
	environ := []string{
		"AWS_REGION=us-east-1", "AWS_ACCESSKEYID=test", "AWS_SECRETACCESSKEY=test", "AWS_CHECKIDENTITY=false",
		"AWS_SQS_URL=" + queue, "AWS_SQS_ENDPOINT=" + f.URL,
		"AWS_LAMBDA_FUNCTIONNAME=function", "AWS_LAMBDA_ENDPOINT=" + rie.URL,
	}
	ev := testEvent("Write below binary dir", event.Error)
	enabled := 0
	for name, spec := range awsSpecs(t) {
		cfg := spec.Config()
		if _, err := config.Load(config.Options{Environ: environ, Sections: []config.Section{{Path: "aws", Target: cfg}}}); err != nil {
			t.Fatalf("%s: load: %v", name, err)
		}
		if !spec.Enabled(cfg) {
			if name == nameSQS || name == nameLambda {
				t.Errorf("%s not enabled by the environment", name)
			}
			continue
		}
		enabled++
		out, err := spec.Build(cfg, testEnv())
		if err != nil {
			t.Fatalf("%s: build: %v", name, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if s, ok := out.(interface {
			Send(context.Context, *event.Event) error
		}); ok {
			if err := s.Send(ctx, ev); err != nil {
				t.Errorf("%s: send: %v", name, err)
			}
		}
		cancel()
	}
	if enabled != 2 {
		t.Fatalf("%d outputs enabled, want awssqs and awslambda", enabled)
	}
	var c collector
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(c.poll(t, f.SQS, queue)) >= 1 }, "nothing in SQS")
	if !strings.Contains(sdkaws.ToString(c.msgs[0].Body), ev.Rule) {
		t.Errorf("SQS body = %s", sdkaws.ToString(c.msgs[0].Body))
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(rie.payloads(t)) >= 1 }, "nothing reached the function")
}

func TestDefaultsAndValidate(t *testing.T) {
	d := defaults()
	if !d.CheckIdentity || d.Lambda.InvocationType != "RequestResponse" || d.Lambda.LogType != "Tail" || d.SNS.RawJSON {
		t.Errorf("defaults differ from falcosidekick's: %+v", d)
	}
	for _, tc := range []struct {
		mutate func(*Config)
		key    string
	}{
		{func(c *Config) { c.AccessKeyID = "AKIA" }, "aws.secretaccesskey"},
		{func(c *Config) { c.RoleARN = "role" }, "aws.rolearn"},
		{func(c *Config) { c.ExternalID = "x" }, "aws.externalid"},
		{func(c *Config) { c.SQS.URL = "sqs.amazonaws.com/q" }, "aws.sqs.url"},
		{func(c *Config) { c.SNS.TopicArn = "falco" }, "aws.sns.topicarn"},
		{func(c *Config) { c.Lambda.InvocationType = "DryRun" }, "aws.lambda.invocationtype"},
		{func(c *Config) { c.Lambda.LogType = "Full" }, "aws.lambda.logtype"},
		{func(c *Config) { c.Endpoint = "localhost:4566" }, "aws.endpoint"},
		{func(c *Config) { c.Lambda.Endpoint = "ftp://x" }, "aws.lambda.endpoint"},
	} {
		c := defaults()
		tc.mutate(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("Validate() = %v, want an error naming %s", err, tc.key)
		}
	}
	c := defaults()
	c.Lambda.InvocationType, c.Lambda.LogType = "event", "none"
	if err := c.Validate(); err != nil || c.Lambda.InvocationType != "event" || c.Lambda.LogType != "none" {
		t.Errorf("Validate must accept case-insensitive values without changing the config: %v %+v", err, c.Lambda)
	}
	parsed, err := c.parse()
	if err != nil || parsed.Lambda.InvocationType != "Event" || parsed.Lambda.LogType != "None" {
		t.Errorf("parse must normalise case-insensitive values: %v %+v", err, parsed)
	}
}

// fakeSTS answers GetCallerIdentity and counts the calls.
func fakeSTS(t *testing.T, calls *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), "Action=GetCallerIdentity") {
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		calls.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>`+
			`<Arn>arn:aws:iam::123456789012:user/saker</Arn><UserId>AIDA</UserId><Account>123456789012</Account>`+
			`</GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestCheckIdentityOncePerSession: the three outputs built from the same aws section share
// one SDK configuration, so the identity is checked once.
func TestCheckIdentityOncePerSession(t *testing.T) {
	var calls atomic.Int32
	srv := fakeSTS(t, &calls)
	c := emulatorConfig(srv.URL)
	c.SecretAccessKey = "shared-session-secret" // a key no other test uses
	c.CheckIdentity = true
	c.SQS.URL, c.SNS.TopicArn, c.Lambda.FunctionName = srv.URL+"/000000000000/q", snsTopic, "function"
	if _, err := NewSQS(c, testEnv()); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSNS(c, testEnv()); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLambda(c, testEnv()); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("GetCallerIdentity called %d times, want once", n)
	}
}

// TestCheckIdentityAgainstEmulators: fauxqs serves STS, so the check passes against it;
// aws-lambda-rie does not, so the check fails with an error that says what to do, and
// pointing aws.sts.endpoint at fauxqs makes it pass. The secret appears in no error or log.
func TestCheckIdentityAgainstEmulators(t *testing.T) {
	const secret = "SECRET-do-not-print-4242"
	f := startFauxqs(t, 0, "")
	rie := startLambda(t, 0, "", "")
	var logs bytes.Buffer
	env := outputs.Env{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}

	c := emulatorConfig(f.URL)
	c.SecretAccessKey, c.CheckIdentity = secret, true
	c.SQS.URL = f.URL + "/000000000000/q"
	if _, err := NewSQS(c, env); err != nil {
		t.Fatalf("identity check against fauxqs: %v", err)
	}

	c = emulatorConfig(rie.URL)
	c.SecretAccessKey, c.CheckIdentity = secret, true
	c.Lambda.FunctionName = "function"
	_, err := NewLambda(c, env)
	if err == nil || !strings.Contains(err.Error(), "aws.checkidentity") || !strings.Contains(err.Error(), "aws.checkidentity=false") {
		t.Fatalf("identity check against the RIE = %v, want a failure naming aws.checkidentity", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the secret: %v", err)
	}

	c.STS.Endpoint = f.URL
	l, err := NewLambda(c, env)
	if err != nil {
		t.Fatalf("identity via aws.sts.endpoint: %v", err)
	}
	if err := l.Send(context.Background(), testEvent("after identity", event.Error)); err != nil {
		t.Fatalf("send: %v", err)
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("logs show the secret: %s", logs.String())
	}
	if !strings.Contains(logs.String(), "arn:aws:iam::000000000000:root") {
		t.Errorf("identity not logged: %s", logs.String())
	}
}
