package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/testpeers"
)

const snsInit = `{"queues":[{"name":"envelope"},{"name":"raw"}],"topics":[{"name":"falco"}],
 "subscriptions":[{"topic":"falco","queue":"envelope"},
                  {"topic":"falco","queue":"raw","attributes":{"RawMessageDelivery":"true"}}]}`

const snsTopic = "arn:aws:sns:us-east-1:000000000000:falco"

func newTestSNS(t *testing.T, endpoint string, raw bool) *SNS {
	t.Helper()
	c := emulatorConfig(endpoint)
	c.SNS.TopicArn, c.SNS.RawJSON = snsTopic, raw
	s, err := NewSNS(c, testEnv())
	if err != nil {
		t.Fatalf("NewSNS: %v", err)
	}
	return s
}

// snsEnvelope is what SNS delivers to an SQS subscription without raw delivery.
type snsEnvelope struct {
	Type              string
	TopicArn          string
	Message           string
	MessageAttributes map[string]struct{ Type, Value string }
}

// TestSNSFauxqs publishes through fauxqs to two SQS subscriptions and reads both back: the
// SNS envelope carries the output line and the attributes (rule, priority, output fields
// typed), and the raw subscription gets the message as published.
func TestSNSFauxqs(t *testing.T) {
	f := startFauxqs(t, 0, snsInit)
	s := newTestSNS(t, f.URL, false)
	ev := testEvent("sns <rule>", event.Critical)
	ev.OutputFields["proc.aname[2]"] = "bash"
	ev.OutputFields["ka.user.groups"] = []any{"a", "b"}
	if err := s.Send(context.Background(), ev); err != nil {
		t.Fatalf("Send: %v", err)
	}
	env, raw := fauxqsQueueURL(portOf(t, f.URL), "envelope"), fauxqsQueueURL(portOf(t, f.URL), "raw")
	var ce, cr collector
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(ce.poll(t, f.SQS, env)) >= 1 }, "nothing in the envelope queue")
	var got snsEnvelope
	if err := json.Unmarshal([]byte(sdkaws.ToString(ce.msgs[0].Body)), &got); err != nil {
		t.Fatalf("envelope: %v: %s", err, sdkaws.ToString(ce.msgs[0].Body))
	}
	if got.Type != "Notification" || got.TopicArn != snsTopic || got.Message != ev.Output {
		t.Errorf("envelope = %+v, want a notification of the output line", got)
	}
	for name, want := range map[string]string{"rule": "String:sns <rule>", "priority": "String:Critical", "source": "String:syscall",
		"hostname": "String:host-1", "tags": "String:t1,t2", "proc.name": "String:sh", "proc.pid": "Number:42",
		"proc.aname.2": "String:bash", "ka.user.groups": `String.Array:["a","b"]`} {
		a := got.MessageAttributes[name]
		if a.Type+":"+a.Value != want {
			t.Errorf("attribute %s = %s:%s, want %s", name, a.Type, a.Value, want)
		}
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(cr.poll(t, f.SQS, raw)) >= 1 }, "nothing in the raw queue")
	if body := sdkaws.ToString(cr.msgs[0].Body); body != ev.Output {
		t.Errorf("raw delivery = %q, want the output line", body)
	}

	// rawjson: the message is the event's JSON.
	sr := newTestSNS(t, f.URL, true)
	ev2 := testEvent("raw json rule", event.Warning)
	if err := sr.Send(context.Background(), ev2); err != nil {
		t.Fatalf("Send rawjson: %v", err)
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(cr.poll(t, f.SQS, raw)) >= 2 }, "rawjson message not delivered")
	if body := sdkaws.ToString(cr.msgs[1].Body); body != string(ev2.JSON()) {
		t.Errorf("rawjson message = %s, want %s", body, ev2.JSON())
	}
	if r := sdkaws.ToString(cr.msgs[1].MessageAttributes["rule"].StringValue); r != "raw json rule" {
		t.Errorf("rawjson rule attribute = %q", r)
	}
}

// TestSNSMissingTopicIsPermanent: a topic that does not exist is not retried.
func TestSNSMissingTopicIsPermanent(t *testing.T) {
	f := startFauxqs(t, 0, "")
	c := emulatorConfig(f.URL)
	c.SNS.TopicArn = "arn:aws:sns:us-east-1:000000000000:nope"
	s, err := NewSNS(c, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), testEvent("r", event.Error)); err == nil || !delivery.IsPermanent(err) {
		t.Fatalf("Send to a missing topic = %v, want a permanent error", err)
	}
}

// TestSNSPeerDownThenUp: published while fauxqs is down, delivered once it is up.
func TestSNSPeerDownThenUp(t *testing.T) {
	port := testpeers.FreePort(t)
	s := newTestSNS(t, fmt.Sprintf("http://127.0.0.1:%d", port), true)
	p := delivery.DefaultPolicy()
	p.Retry.Initial, p.Retry.Max = 20*time.Millisecond, 200*time.Millisecond
	eng := deliverytest.Start(t, s, p)
	const n = 8
	for i := range n {
		if _, err := eng.Publish(context.Background(), testEvent(fmt.Sprintf("sns-late-%d", i), event.Error), []string{nameSNS}); err != nil {
			t.Fatal(err)
		}
	}
	f := startFauxqs(t, port, snsInit)
	raw := fauxqsQueueURL(port, "raw")
	var c collector
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(c.poll(t, f.SQS, raw)) >= n },
		"raw queue holds %d of %d messages", len(c.msgs), n)
	if lost := eng.Stop(2 * time.Second); lost != 0 {
		t.Errorf("%d events lost", lost)
	}
	seen := map[string]bool{}
	for _, m := range c.msgs {
		seen[sdkaws.ToString(m.MessageAttributes["rule"].StringValue)] = true
	}
	for i := range n {
		if r := fmt.Sprintf("sns-late-%d", i); !seen[r] {
			t.Errorf("%s never arrived", r)
		}
	}
}

// TestSNSMinimumPriority routes through the engine with aws.sns.minimumpriority=critical.
func TestSNSMinimumPriority(t *testing.T) {
	f := startFauxqs(t, 0, snsInit)
	s := newTestSNS(t, f.URL, true)
	p := delivery.DefaultPolicy()
	p.MinimumPriority = "critical"
	eng := deliverytest.Start(t, s, p)
	for _, ev := range []*event.Event{testEvent("low", event.Error), testEvent("high", event.Alert)} {
		deliverytest.Publish(t, eng, ev)
	}
	raw := fauxqsQueueURL(portOf(t, f.URL), "raw")
	var c collector
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(c.poll(t, f.SQS, raw)) >= 1 }, "alert event not received")
	eng.Stop(2 * time.Second)
	msgs := c.poll(t, f.SQS, raw)
	if len(msgs) != 1 || sdkaws.ToString(msgs[0].MessageAttributes["rule"].StringValue) != "high" {
		t.Fatalf("received %d messages, want only the alert one", len(msgs))
	}
}

func portOf(t *testing.T, url string) int {
	t.Helper()
	var port int
	if _, err := fmt.Sscanf(url, "http://127.0.0.1:%d", &port); err != nil {
		t.Fatalf("port of %s: %v", url, err)
	}
	return port
}
