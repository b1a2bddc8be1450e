package kafka

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
)

// BenchmarkSendBatch: 100-event batches acknowledged by all replicas of an in-process kfake
// (its CPU is counted too: the output's own share is lower).
func BenchmarkSendBatch(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	out, err := New(&Config{HostPort: strings.Join(c.ListenAddrs(), ","), Topic: topic, RequiredAcks: "ALL"}, testEnv())
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	batch := make([]*event.Event, 100)
	for i := range batch {
		batch[i] = deliverytest.Event(i)
	}
	deliverytest.CPUPerEvent(b, b.N*len(batch), func() {
		for range b.N {
			if err := out.SendBatch(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}
