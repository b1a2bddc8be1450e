package redis

import (
	"context"
	"fmt"
	"testing"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/testpeers"
)

// BenchmarkSendBatch: RPUSH of 100-event batches to a redis-server of its own.
func BenchmarkSendBatch(b *testing.B) {
	port := testpeers.FreePort(b)
	startRedis(b, port, "")
	out, err := New(&Config{Address: fmt.Sprintf("127.0.0.1:%d", port), StorageType: "list", Key: "bench"}, testEnv())
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
