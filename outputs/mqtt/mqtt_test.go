package mqtt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

// startMosquitto runs a mosquitto of the test's own on a free port; with user set it only
// lets that user in. It returns host:port.
func startMosquitto(t testing.TB, user, password string) string {
	t.Helper()
	return mosquitto(t, user, password, nil)
}

// mosquitto starts the broker, with a TLS listener when pki is set.
func mosquitto(t testing.TB, user, password string, pki *testpeers.PKI) string {
	t.Helper()
	bin := testpeers.Bin(t, "mosquitto")
	dir := t.TempDir()
	port := testpeers.FreePort(t)
	conf := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\n", port)
	if pki != nil {
		conf += fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\n", pki.CAFile, pki.ServerCertFile, pki.ServerKeyFile)
	}
	if os.Geteuid() == 0 {
		conf += "user root\n" // else mosquitto switches to user mosquitto, who cannot read the test's files
	}
	if user == "" {
		conf += "allow_anonymous true\n"
	} else {
		pw := filepath.Join(dir, "passwd")
		if out, err := exec.Command(testpeers.Bin(t, "mosquitto_passwd"), "-b", "-c", pw, user, password).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v %s", err, out)
		}
		conf += "allow_anonymous false\npassword_file " + pw + "\n"
	}
	cf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	testpeers.Start(t, "mosquitto", []string{bin, "-c", cf}, nil, func() bool { return testpeers.PortOpen(port) }, 10*time.Second)
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// subscriber collects what arrives on topic.
type subscriber struct {
	mu   sync.Mutex
	msgs []paho.Message
}

func subscribe(t *testing.T, addr, topic, user, password string) *subscriber {
	t.Helper()
	s := &subscriber{}
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("saker-test-sub").SetUsername(user).SetPassword(password)
	cl := paho.NewClient(o)
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	tok := cl.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return s
}

func (s *subscriber) wait(t *testing.T, n int) []paho.Message {
	t.Helper()
	testpeers.Eventually(t, 20*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.msgs) >= n
	}, "subscriber got fewer than %d messages", n)
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]paho.Message(nil), s.msgs...)
}

func newOutput(t testing.TB, c *Config) *MQTT {
	t.Helper()
	m, err := New(c, outputs.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// connected waits until the output's connection is up (paho connects in the background).
func connected(t testing.TB, m *MQTT) {
	t.Helper()
	testpeers.Eventually(t, 10*time.Second, m.cl.IsConnectionOpen, "the output did not connect")
}

// TestPublishReadBack publishes the recorded events with QoS 1 to a broker requiring a
// password, read back by a subscriber: payload the Falco JSON falcosidekick sends, on the
// default topic falco/events.
func TestPublishReadBack(t *testing.T) {
	addr := startMosquitto(t, "falco", "mq-pass")
	sub := subscribe(t, addr, "falco/events", "falco", "mq-pass")
	c := defaults()
	c.Broker, c.User, c.Password, c.QOS = "tcp://"+addr, "falco", "mq-pass", 1
	out := newOutput(t, c)
	connected(t, out)
	evs := goldens.Events(t, func(string) string { return "11111111-2222-4333-8444-555555555555" })
	names := goldens.Names(evs)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range names {
		if err := out.Send(ctx, evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	got := sub.wait(t, len(names))
	byPayload := map[string]paho.Message{}
	for _, m := range got {
		byPayload[string(m.Payload())] = m
	}
	for _, name := range names {
		m, ok := byPayload[string(evs[name].JSON())]
		if !ok {
			t.Errorf("%s: not received", name)
			continue
		}
		if m.Topic() != "falco/events" || m.Retained() {
			t.Errorf("%s: topic %s retained %v", name, m.Topic(), m.Retained())
		}
		goldens.SameEventJSON(t, "webhook", name, m.Payload())
	}

	bad := newOutput(t, &Config{Broker: "tcp://" + addr, Topic: "falco/events", User: "falco", Password: "wrong-mq-pass"})
	if err := bad.Send(ctx, deliverytest.Event(1)); err == nil || strings.Contains(err.Error(), "wrong-mq-pass") {
		t.Errorf("send with a wrong password: %v", err)
	}
}

// TestTLS publishes over ssl:// to a TLS listener whose CA is tlsclient.cacertfile, or with
// checkcert false.
func TestTLS(t *testing.T) {
	pki := testpeers.NewPKI(t)
	addr := mosquitto(t, "", "", pki)
	env := outputs.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), TLS: httpout.TLSFiles{CACertFile: pki.CAFile}}
	for _, tc := range []struct {
		name      string
		env       outputs.Env
		checkCert bool
	}{{"custom CA", env, true}, {"checkcert false", outputs.Env{}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{Broker: "ssl://" + addr, Topic: "falco/events", QOS: 1, CheckCert: tc.checkCert}
			out, err := New(c, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			connected(t, out)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := out.Send(ctx, deliverytest.Event(1)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRetained: a retained event is what a later subscriber gets first.
func TestRetained(t *testing.T) {
	addr := startMosquitto(t, "", "")
	out := newOutput(t, &Config{Broker: "tcp://" + addr, Topic: "saker/retained", QOS: 1, Retained: true})
	connected(t, out)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := out.Send(ctx, deliverytest.Event(7)); err != nil {
		t.Fatal(err)
	}
	m := subscribe(t, addr, "saker/retained", "", "").wait(t, 1)[0]
	if !m.Retained() || string(m.Payload()) != string(deliverytest.Event(7).JSON()) {
		t.Errorf("retained %v payload %s", m.Retained(), m.Payload())
	}
}

// TestDownThenUp: with the broker unreachable (QoS 0, falcosidekick's default) sends fail
// instead of being dropped; once it is reachable every event arrives, once.
func TestDownThenUp(t *testing.T) {
	addr := startMosquitto(t, "", "")
	sub := subscribe(t, addr, "falco/events", "", "")
	p := testpeers.NewProxy(t, addr, true)
	c := defaults()
	c.Broker = "tcp://" + p.Addr
	out := newOutput(t, c)
	const n = 10
	eng := deliverytest.QueueWhileDown(t, out, deliverytest.Policy(""), n)
	p.Up(t)
	got := sub.wait(t, n)
	deliverytest.StopLosingNothing(t, eng)
	deliverytest.Received(t, payloads(got), n, true)
}

func payloads(msgs []paho.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Payload())
	}
	return out
}

// TestConnectionDropped: the connection is cut in the middle of a stream of QoS 1 events;
// the publishes in flight fail, the next send dials again, and every event arrives at least
// once.
func TestConnectionDropped(t *testing.T) {
	addr := startMosquitto(t, "", "")
	sub := subscribe(t, addr, "falco/events", "", "")
	p := testpeers.NewProxy(t, addr, false)
	c := defaults()
	c.Broker, c.QOS = "tcp://"+p.Addr, 1
	out := newOutput(t, c)
	connected(t, out)
	eng := deliverytest.Start(t, out, deliverytest.Policy(""))
	const n = 30
	for i := range n {
		deliverytest.Publish(t, eng, deliverytest.Event(i))
		if i == n/2 {
			p.Cut()
		}
	}
	testpeers.Eventually(t, 20*time.Second, func() bool {
		seen := map[string]bool{}
		for _, m := range sub.wait(t, 0) {
			seen[string(m.Payload())] = true
		}
		for i := range n {
			if !seen[string(deliverytest.Event(i).JSON())] {
				return false
			}
		}
		return true
	}, "not every event arrived after the connection was cut")
	deliverytest.StopLosingNothing(t, eng)
}

// TestConnectWithinDeadline: against a broker that never answers the CONNECT, Send fails
// when the attempt's context ends, without showing the password.
func TestConnectWithinDeadline(t *testing.T) {
	out := newOutput(t, &Config{Broker: "tcp://" + testpeers.Silent(t), Topic: "t", User: "u", Password: "hunter2mq"})
	deliverytest.FailsWithin(t, func(ctx context.Context) error { return out.Send(ctx, deliverytest.Event(1)) }, "hunter2mq")
}

// TestAckWithheld: with QoS 1, a broker that never acknowledges makes Send fail when the
// attempt's context ends.
func TestAckWithheld(t *testing.T) {
	addr := startMosquitto(t, "", "")
	p := testpeers.NewProxy(t, addr, false)
	c := defaults()
	c.Broker, c.QOS = "tcp://"+p.Addr, 1
	out := newOutput(t, c)
	connected(t, out)
	p.Hold()
	deliverytest.FailsWithin(t, func(ctx context.Context) error { return out.Send(ctx, deliverytest.Event(1)) }, "")
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{*defaults(), ""},
		{Config{Broker: "ssl://b:8883", Topic: "a/b", QOS: 2}, ""},
		{Config{Broker: "b:1883", Topic: "a"}, "mqtt.broker"},
		{Config{Broker: "http://u:secretpw@b:1883", Topic: "a"}, "mqtt.broker"},
		{Config{Broker: "tcp://b:1883", Topic: "a/#"}, "mqtt.topic"},
		{Config{Broker: "tcp://b:1883", Topic: ""}, "mqtt.topic"},
		{Config{Broker: "tcp://b:1883", Topic: "a", QOS: 3}, "mqtt.qos"},
		{Config{Broker: "tcp://b:1883", Topic: "a", Password: "secretpw"}, "mqtt.user"},
	} {
		deliverytest.Invalid(t, tc.cfg, tc.cfg.Validate(), tc.want, "secretpw")
	}
}
