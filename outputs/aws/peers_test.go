package aws

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/testpeers"
)

// fauxqs is a running fauxqs (npm fauxqs@1.9.2: SQS, SNS and STS GetCallerIdentity).
type fauxqs struct {
	*testpeers.Proc
	URL string
	SQS *sqs.Client
	SNS *sns.Client
}

// startFauxqs runs fauxqs on port (0: a free one) and returns clients to set up and read it.
// init, when not empty, is a FAUXQS_INIT document: queues, topics and subscriptions that
// exist from the first request on (tests that start the peer late need them).
func startFauxqs(t *testing.T, port int, init string) *fauxqs {
	t.Helper()
	testpeers.Need(t, "fauxqs")
	cli := filepath.Join(testpeers.Dir(), "fauxqs", "node_modules", "fauxqs", "dist", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("fauxqs not installed at %s: run .ci/install-peers.sh", cli)
	}
	node := testpeers.Bin(t, "node")
	if port == 0 {
		port = testpeers.FreePort(t)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := []string{fmt.Sprintf("FAUXQS_PORT=%d", port), "FAUXQS_LOGGER=false"}
	if init != "" {
		path := filepath.Join(t.TempDir(), "init.json")
		if err := os.WriteFile(path, []byte(init), 0o600); err != nil {
			t.Fatal(err)
		}
		env = append(env, "FAUXQS_INIT="+path)
	}
	p := testpeers.Start(t, "fauxqs", []string{node, cli}, env,
		func() bool { return testpeers.HTTPOK(url + "/health") }, 20*time.Second)
	cfg := readerConfig(url)
	return &fauxqs{Proc: p, URL: url, SQS: sqs.NewFromConfig(cfg), SNS: sns.NewFromConfig(cfg)}
}

// readerConfig is a plain SDK configuration for the test's own calls to an emulator.
func readerConfig(endpoint string) sdkaws.Config {
	return sdkaws.Config{Region: "us-east-1", BaseEndpoint: sdkaws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
}

// createQueue creates a queue and returns its URL.
func (f *fauxqs) createQueue(t *testing.T, name string) string {
	t.Helper()
	out, err := f.SQS.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: sdkaws.String(name)})
	if err != nil {
		t.Fatalf("fauxqs CreateQueue %s: %v", name, err)
	}
	return sdkaws.ToString(out.QueueUrl)
}

// fauxqsQueueURL is the URL fauxqs gives queue name when started on port: tests that start
// it late configure the output with it beforehand.
func fauxqsQueueURL(port int, name string) string {
	return fmt.Sprintf("http://sqs.us-east-1.localhost:%d/000000000000/%s", port, name)
}

// collector accumulates the messages received from a queue (each deleted once read).
type collector struct {
	mu   sync.Mutex
	msgs []sqstypes.Message
}

// poll receives what is in the queue now and returns everything received so far.
func (c *collector) poll(t *testing.T, client *sqs.Client, queueURL string) []sqstypes.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: sdkaws.String(queueURL),
		MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}, WaitTimeSeconds: 0})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		t.Logf("ReceiveMessage: %v", err)
		return c.msgs
	}
	for _, m := range out.Messages {
		c.msgs = append(c.msgs, m)
		_, _ = client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: sdkaws.String(queueURL), ReceiptHandle: m.ReceiptHandle})
	}
	return c.msgs
}

// lambdaRIE is aws-lambda-rie running the lambda-recorder function.
type lambdaRIE struct {
	*testpeers.Proc
	URL    string
	record string
}

// startLambda runs aws-lambda-rie on port (0: a free one) with lambda-recorder recording
// into record (created if empty) and failing on payloads containing failOn.
func startLambda(t *testing.T, port int, record, failOn string) *lambdaRIE {
	t.Helper()
	rie := testpeers.Bin(t, "aws-lambda-rie")
	handler := testpeers.Bin(t, "lambda-recorder")
	if port == 0 {
		port = testpeers.FreePort(t)
	}
	if record == "" {
		record = filepath.Join(t.TempDir(), "payloads.jsonl")
	}
	env := []string{"RECORD_TO=" + record}
	if failOn != "" {
		env = append(env, "FAIL_ON="+failOn)
	}
	p := testpeers.Start(t, "aws-lambda-rie", []string{rie,
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", testpeers.FreePort(t)), handler},
		env, func() bool { return testpeers.PortOpen(port) }, 20*time.Second)
	return &lambdaRIE{Proc: p, URL: fmt.Sprintf("http://127.0.0.1:%d", port), record: record}
}

// payloads reads back what the function recorded.
func (l *lambdaRIE) payloads(t *testing.T) []map[string]any {
	t.Helper()
	f, err := os.Open(l.record)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("recorded payload is not JSON: %v: %s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// testEvent is a small event with a distinct rule.
func testEvent(rule string, prio event.Priority) *event.Event {
	return &event.Event{UUID: "uuid-" + rule, Output: "output of " + rule, Priority: prio, Rule: rule,
		Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Source: "syscall", Hostname: "host-1",
		Tags: []string{"t1", "t2"}, OutputFields: map[string]any{"proc.name": "sh", "proc.pid": json.Number("42")}}
}

// emulatorConfig is the aws section pointing every service at endpoint, as a user of an
// emulator would write it (no identity check: aws-lambda-rie serves no STS).
func emulatorConfig(endpoint string) *Config {
	c := defaults()
	c.Region, c.AccessKeyID, c.SecretAccessKey = "us-east-1", "test", "test"
	c.CheckIdentity = false
	c.Endpoint = endpoint
	return c
}
