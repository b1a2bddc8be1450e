package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

const testUUID = "11111111-2222-4333-8444-555555555555"

// startRedis runs a redis-server of the test's own on port (no persistence), with
// requirepass when password is set, and returns a connection to database 3 to read back with.
func startRedis(t testing.TB, port int, password string) redis.Conn {
	t.Helper()
	bin := testpeers.Bin(t, "redis-server")
	argv := []string{bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}
	if password != "" {
		argv = append(argv, "--requirepass", password)
	}
	testpeers.Start(t, "redis-server", argv, nil, func() bool { return testpeers.PortOpen(port) }, 15*time.Second)
	return dial(t, port, password, 3)
}

func dial(t testing.TB, port int, password string, db int) redis.Conn {
	t.Helper()
	c, err := redis.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), redis.DialPassword(password), redis.DialDatabase(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testEnv() outputs.Env {
	return outputs.Env{Policy: deliverytest.Policy("")}
}

func newOutput(t *testing.T, c *Config) *Redis {
	t.Helper()
	r, err := New(c, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func goldenBatch(t *testing.T) ([]string, []*event.Event) {
	evs := goldens.Events(t, func(string) string { return testUUID })
	names := goldens.Names(evs)
	batch := make([]*event.Event, len(names))
	for i, n := range names {
		batch[i] = evs[n]
	}
	return names, batch
}

// TestList appends the recorded events as one batch to a list in database 3 of a server
// with a password, and reads them back in order: each is the Falco JSON falcosidekick sends.
func TestList(t *testing.T) {
	port := testpeers.FreePort(t)
	rd := startRedis(t, port, "pa55-word")
	out := newOutput(t, &Config{Address: fmt.Sprintf("127.0.0.1:%d", port), Password: "pa55-word", Database: 3, StorageType: "list", Key: "falco"})
	names, batch := goldenBatch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := out.SendBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := out.Send(ctx, batch[0]); err != nil {
		t.Fatal(err)
	}
	got, err := redis.Strings(rd.Do("LRANGE", "falco", 0, -1))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(batch)+1 {
		t.Fatalf("list holds %d items, want %d", len(got), len(batch)+1)
	}
	for i, name := range names {
		if got[i] != string(batch[i].JSON()) {
			t.Errorf("item %d: %s", i, got[i])
		}
		goldens.SameEventJSON(t, "webhook", name, []byte(got[i]))
	}

	bad := newOutput(t, &Config{Address: fmt.Sprintf("127.0.0.1:%d", port), Password: "not-the-pass", Key: "falco"})
	err = bad.Send(ctx, batch[0])
	if err == nil || strings.Contains(err.Error(), "not-the-pass") {
		t.Errorf("wrong password: %v", err)
	}
}

// TestHashmap sets each event in a hash under its uuid (HSET key uuid json), as
// falcosidekick's storagetype hashmap; a key holding a list is a permanent failure.
func TestHashmap(t *testing.T) {
	port := testpeers.FreePort(t)
	rd := startRedis(t, port, "")
	out := newOutput(t, &Config{Address: fmt.Sprintf("127.0.0.1:%d", port), Database: 3, StorageType: "HashMap", Key: "falco-events"})
	evs := []*event.Event{deliverytest.Event(1), deliverytest.Event(2)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := out.SendBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	got, err := redis.StringMap(rd.Do("HGETALL", "falco-events"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[evs[0].UUID] != string(evs[0].JSON()) || got[evs[1].UUID] != string(evs[1].JSON()) {
		t.Errorf("hash holds %v", got)
	}
	if _, err := rd.Do("RPUSH", "a-list", "x"); err != nil {
		t.Fatal(err)
	}
	wrong := newOutput(t, &Config{Address: fmt.Sprintf("127.0.0.1:%d", port), Database: 3, StorageType: "hashmap", Key: "a-list"})
	if err := wrong.Send(ctx, evs[0]); err == nil || !delivery.IsPermanent(err) {
		t.Errorf("HSET on a list: %v, want a permanent error", err)
	}
}

// TestACLUser authenticates as a Redis 6 ACL user limited to RPUSH on its key.
func TestACLUser(t *testing.T) {
	port := testpeers.FreePort(t)
	testpeers.Start(t, "redis-server", []string{testpeers.Bin(t, "redis-server"), "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--user", "falco", "on", ">acl-pass", "~falco", "+rpush"},
		nil, func() bool { return testpeers.PortOpen(port) }, 15*time.Second)
	out := newOutput(t, &Config{Address: fmt.Sprintf("127.0.0.1:%d", port), Username: "falco", Password: "acl-pass", StorageType: "list", Key: "falco"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := out.Send(ctx, deliverytest.Event(1)); err != nil {
		t.Fatal(err)
	}
	denied := newOutput(t, &Config{Address: fmt.Sprintf("127.0.0.1:%d", port), Username: "falco", Password: "acl-pass", StorageType: "list", Key: "other"})
	if err := denied.Send(ctx, deliverytest.Event(2)); err == nil {
		t.Error("RPUSH to a key the user may not write succeeded")
	}
}

// TestDownThenUp: events queued while the server is down are stored once each after it
// starts, through the engine's retries (go-redis's own are off).
func TestDownThenUp(t *testing.T) {
	port := testpeers.FreePort(t)
	out := newOutput(t, &Config{Address: fmt.Sprintf("127.0.0.1:%d", port), StorageType: "list", Key: "falco"})
	p := deliverytest.Policy("")
	p.Batch = delivery.BatchPolicy{MaxEvents: 4, MaxBytes: 1 << 20, FlushInterval: 10 * time.Millisecond}
	const n = 20
	eng := deliverytest.QueueWhileDown(t, out, p, n)
	startRedis(t, port, "")
	rd0 := dial(t, port, "", 0)
	testpeers.Eventually(t, 20*time.Second, func() bool {
		l, _ := redis.Int(rd0.Do("LLEN", "falco"))
		return l >= n
	}, "the list did not get %d events", n)
	deliverytest.StopLosingNothing(t, eng)
	all, err := redis.Strings(rd0.Do("LRANGE", "falco", 0, -1))
	if err != nil {
		t.Fatal(err)
	}
	deliverytest.Received(t, all, n, true)
}

// TestDeadline: a server that never answers makes Send fail with the attempt's context.
func TestDeadline(t *testing.T) {
	out := newOutput(t, &Config{Address: testpeers.Silent(t), StorageType: "list", Key: "falco"})
	deliverytest.FailsWithin(t, func(ctx context.Context) error { return out.Send(ctx, deliverytest.Event(1)) }, "")
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{*defaults(), ""},
		{Config{Address: "redis:6379", StorageType: "list", Key: "k"}, ""},
		{Config{Address: "redis://redis:6379", StorageType: "list", Key: "k"}, "redis.address"},
		{Config{Address: "redis", StorageType: "list", Key: "k"}, "redis.address"},
		{Config{Address: "redis:6379", StorageType: "set", Key: "k"}, "redis.storagetype"},
		{Config{Address: "redis:6379", StorageType: "list", Key: "k", Database: -1}, "redis.database"},
		{Config{Address: "redis:6379", StorageType: "list"}, "redis.key"},
	} {
		deliverytest.Invalid(t, tc.cfg, tc.cfg.Validate(), tc.want)
	}
}
