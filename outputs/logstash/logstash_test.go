package logstash

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

func newOutput(t *testing.T, port int, mod func(*Config)) *Logstash {
	t.Helper()
	c := defaults()
	c.Address, c.Port = "127.0.0.1", port
	if mod != nil {
		mod(c)
	}
	l, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// TestLinesAsFalcosidekick: each event is one JSON line, the Falco JSON falcosidekick wrote.
func TestLinesAsFalcosidekick(t *testing.T) {
	evs := goldens.Events(t, func(n string) string { return "uuid-" + n })
	l := newOutput(t, 1, nil)
	for _, name := range goldens.Names(evs) {
		line := l.Line(evs[name])
		if !strings.HasSuffix(string(line), "}\n") || strings.Count(string(line), "\n") != 1 {
			t.Fatalf("%s: not one line: %q", name, line)
		}
		rec := goldens.Recorded(t, "logstash-tcp", name)
		var fsk, ours map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(rec.Data)), &fsk); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(line, &ours); err != nil {
			t.Fatal(err)
		}
		ours["uuid"] = fsk["uuid"]
		goldens.NormalizeTime(fsk)
		goldens.NormalizeTime(ours)
		a, _ := json.Marshal(fsk)
		b, _ := json.Marshal(ours)
		if string(a) != string(b) {
			t.Errorf("%s:\n%s\nfalcosidekick wrote\n%s", name, b, a)
		}
	}
}

// TestTagsAdded: logstash.tags are added to the event's own tags, once each, without
// touching the event the other outputs see.
func TestTagsAdded(t *testing.T) {
	ev := &event.Event{Rule: "r", Priority: event.Notice, Time: time.Now(), Tags: []string{"a", "falco"}}
	var got map[string]any
	if err := json.Unmarshal(newOutput(t, 1, func(c *Config) { c.Tags = []string{"falco", "k8s"} }).Line(ev), &got); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got["tags"]) != "[a falco k8s]" || len(ev.Tags) != 2 {
		t.Errorf("tags %v, event's %v", got["tags"], ev.Tags)
	}
}

// TestReceiverRestartLosesNothing: lines sent through the engine while Logstash is down and
// after it restarts all arrive, on a new connection.
func TestReceiverRestartLosesNothing(t *testing.T) {
	s := testpeers.StartLineServer(t, nil)
	eng := deliverytest.Start(t, newOutput(t, s.Port, nil), deliverytest.Policy(""))
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			deliverytest.Publish(t, eng, &event.Event{Rule: "r", Priority: event.Notice, Time: time.Now(), Output: "line " + strconv.Itoa(i)})
		}
	}
	publish(0, 5)
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(s.Lines()) == 5 }, "first lines")
	s.Stop()
	publish(5, 10)
	deliverytest.WaitFailing(t, eng)
	s.Start(t)
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(s.Lines()) >= 10 }, "lines after the restart: %d", len(s.Lines()))
	eng.Stop(time.Second)
	all := strings.Join(s.Lines(), "\n")
	for i := range 10 {
		if c := strings.Count(all, fmt.Sprintf(`"line %d"`, i)); c != 1 {
			t.Errorf("line %d received %d times", i, c)
		}
	}
}

// TestTLSWithClientCertificate: with tls and mutualtls, lines reach a TLS receiver that
// requires the client certificate given by certfile/keyfile.
func TestTLSWithClientCertificate(t *testing.T) {
	pki := testpeers.NewPKI(t)
	s := testpeers.StartLineServer(t, &tls.Config{Certificates: []tls.Certificate{pki.ServerCert}, ClientCAs: pki.Pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	l := newOutput(t, s.Port, func(c *Config) {
		c.TLS, c.MutualTLS, c.CACertFile, c.CertFile, c.KeyFile = true, true, pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Send(ctx, &event.Event{Rule: "over tls", Priority: event.Notice, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	testpeers.Eventually(t, 5*time.Second, func() bool { return len(s.Lines()) == 1 }, "no line over TLS")
}

func TestValidate(t *testing.T) {
	if err := (&Config{Address: "ls", Port: 70000}).Validate(); err == nil || !strings.Contains(err.Error(), "logstash.port") {
		t.Errorf("Validate() = %v", err)
	}
}
