package mqtt

import (
	"context"
	"testing"

	"github.com/saker-dev/saker/internal/deliverytest"
)

// BenchmarkSendQoS1: one acknowledged (QoS 1) publish per event to a mosquitto of its own.
func BenchmarkSendQoS1(b *testing.B) {
	addr := startMosquitto(b, "", "")
	c := defaults()
	c.Broker, c.QOS = "tcp://"+addr, 1
	out := newOutput(b, c)
	connected(b, out)
	ev := deliverytest.Event(1)
	deliverytest.CPUPerEvent(b, b.N, func() {
		for range b.N {
			if err := out.Send(context.Background(), ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
