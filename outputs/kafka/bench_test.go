package kafka

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

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
	deliverytest.BenchBatches(b, out, 100)
}
