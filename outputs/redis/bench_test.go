package redis

import (
	"fmt"
	"testing"

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
	deliverytest.BenchBatches(b, out, 100)
}
