package azure

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

const (
	hub     = "falco-hub"
	connStr = "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0LWtleS0xMjM="
)

// eventHubs is a kfake cluster that stands for the Event Hubs Kafka endpoint: TLS with a
// test CA, SASL PLAIN with user $ConnectionString and the connection string as password.
func eventHubs(t *testing.T, pki *testpeers.PKI, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, hub),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.ServerCert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("PLAIN", "$ConnectionString", connStr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func testEnv(pki *testpeers.PKI) outputs.Env {
	p := delivery.DefaultPolicy()
	p.Timeout = 5 * time.Second
	return outputs.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Policy: p,
		TLS: httpout.TLSFiles{CACertFile: pki.CAFile}}
}

func readBack(t *testing.T, pki *testpeers.PKI, addrs []string, n int) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(hub),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DialTLSConfig(&tls.Config{RootCAs: pki.Pool}),
		kgo.SASL(plain.Auth{User: "$ConnectionString", Pass: connStr}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got := map[string]int{}
	for total := 0; total < n; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %d of %d events", total, n)
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)]++; total++ })
	}
	return got
}

// TestSendReadBack sends through the endpoint override to the TLS + SASL PLAIN stand-in and
// reads the event JSON back from the hub's topic.
func TestSendReadBack(t *testing.T) {
	pki := testpeers.NewPKI(t)
	c := eventHubs(t, pki)
	out, err := New(&Config{EventHub: EventHub{Name: hub, Namespace: "myns", ConnectionString: connStr, Endpoint: c.ListenAddrs()[0]}}, testEnv(pki))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if out.Name() != "azureeventhub" {
		t.Errorf("name %q", out.Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	evs := []*event.Event{deliverytest.Event(1), deliverytest.Event(2)}
	if err := out.SendBatch(ctx, evs); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := readBack(t, pki, c.ListenAddrs(), 2)
	for _, ev := range evs {
		if got[string(ev.JSON())] != 1 {
			t.Errorf("event %s read back %d times", ev.UUID, got[string(ev.JSON())])
		}
	}
}

// TestWrongKey: a connection string the hub refuses fails the send; the key is not shown.
func TestWrongKey(t *testing.T) {
	pki := testpeers.NewPKI(t)
	c := eventHubs(t, pki)
	wrong := strings.Replace(connStr, "c2VjcmV0LWtleS0xMjM=", "d3Jvbmcta2V5LTQ1Ng==", 1)
	out, err := New(&Config{EventHub: EventHub{Name: hub, ConnectionString: wrong, Endpoint: c.ListenAddrs()[0]}}, testEnv(pki))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	deliverytest.FailsWithin(t, func(ctx context.Context) error { return out.Send(ctx, deliverytest.Event(1)) }, "d3Jvbmcta2V5LTQ1Ng")
}

// TestDownThenUp: events queued while the endpoint is down all arrive, once, after it starts.
func TestDownThenUp(t *testing.T) {
	pki := testpeers.NewPKI(t)
	port := testpeers.FreePort(t)
	out, err := New(&Config{EventHub: EventHub{Name: hub, ConnectionString: connStr, Endpoint: fmt.Sprintf("127.0.0.1:%d", port)}}, testEnv(pki))
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	eng := deliverytest.QueueWhileDown(t, out, deliverytest.Policy(""), n)
	c := eventHubs(t, pki, kfake.Ports(port))
	got := readBack(t, pki, c.ListenAddrs(), n)
	deliverytest.StopLosingNothing(t, eng)
	for i := range n {
		if got[string(deliverytest.Event(i).JSON())] != 1 {
			t.Errorf("event %d stored %d times", i, got[string(deliverytest.Event(i).JSON())])
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{EventHub: EventHub{Namespace: "ns"}}, ""}, // disabled: no name
		{Config{EventHub: EventHub{Name: "h", ConnectionString: connStr}}, ""},
		{Config{EventHub: EventHub{Name: "h", Namespace: "ns"}}, "managed identity is not supported"},
		{Config{EventHub: EventHub{Name: "h", Namespace: "ns"}, PodIdentityClientID: "abc"}, "azure.podidentityclientid"},
		{Config{EventHub: EventHub{Name: "h", ConnectionString: "Endpoint=sb://x/;SharedAccessKeyName=k"}}, "shared access connection string"},
		{Config{EventHub: EventHub{Name: "h", ConnectionString: connStr + ";EntityPath=other"}}, "azure.eventhub.name"},
		{Config{EventHub: EventHub{Name: "h", ConnectionString: "SharedAccessKeyName=k;SharedAccessKey=secretvalue"}}, "azure.eventhub.namespace"},
		{Config{EventHub: EventHub{Name: "h", ConnectionString: connStr, Endpoint: "https://x/"}}, "azure.eventhub.endpoint"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg.EventHub, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one saying %s", tc.cfg.EventHub, err, tc.want)
		case err != nil && (strings.Contains(err.Error(), "secretvalue") || strings.Contains(err.Error(), "c2VjcmV0")):
			t.Errorf("error shows the key: %v", err)
		}
	}
	for ns, want := range map[string]string{"myns": "myns.servicebus.windows.net:9093", "x.servicebus.chinacloudapi.cn": "x.servicebus.chinacloudapi.cn:9093", "": "myns.servicebus.windows.net:9093"} {
		c := Config{EventHub: EventHub{Name: "h", Namespace: ns, ConnectionString: connStr}}
		if got := c.broker(); got != want {
			t.Errorf("namespace %q: broker %s, want %s", ns, got, want)
		}
	}
}
