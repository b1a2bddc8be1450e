package rabbitmq

import (
	"context"
	"testing"

	"github.com/saker-dev/saker/internal/deliverytest"
)

// BenchmarkSend: one confirmed publish per event to the shared RabbitMQ.
func BenchmarkSend(b *testing.B) {
	q, _ := queue(b)
	out := newOutput(b, brokerURL(broker), q)
	ev := deliverytest.Event(1)
	deliverytest.CPUPerEvent(b, b.N, func() {
		for range b.N {
			if err := out.Send(context.Background(), ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSendBatch: 50-event batches, published then confirmed together.
func BenchmarkSendBatch(b *testing.B) {
	q, _ := queue(b)
	out := newOutput(b, brokerURL(broker), q)
	deliverytest.BenchBatches(b, out, 50)
}
