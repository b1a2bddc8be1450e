// Package redis stores each event's Falco JSON in Redis as falcosidekick's redis output
// does: appended to a list (RPUSH key) or set in a hash under the event's uuid (HSET key
// uuid), through one redigo connection pool sized by the output's concurrency. A batch is
// one RPUSH or HSET command, so it is stored whole or not at all; the client does not retry,
// the delivery engine does. (redigo rather than go-redis, whose command methods add 8 MB to
// the binary for two commands.)
package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// Config is the redis.* section.
type Config struct {
	Address     string `koanf:"address" doc:"host:port of the Redis server; setting it enables the output"`
	Username    string `koanf:"username" doc:"ACL user name (Redis 6+)"`
	Password    string `koanf:"password" secret:"true" doc:"password (AUTH)"`
	Database    int    `koanf:"database" doc:"database number (SELECT)"`
	StorageType string `koanf:"storagetype" doc:"list (RPUSH key event) or hashmap (HSET key uuid event)"`
	Key         string `koanf:"key" doc:"key of the list or the hash"`
}

func defaults() *Config { return &Config{StorageType: "list", Key: "falco"} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Address == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil || strings.Contains(c.Address, "/") {
		return fmt.Errorf("redis.address must be host:port (no scheme), got %q", c.Address)
	}
	switch strings.ToLower(c.StorageType) {
	case "list", "hashmap", "":
	default:
		return fmt.Errorf("redis.storagetype must be list or hashmap, got %q", c.StorageType)
	}
	if c.Database < 0 {
		return fmt.Errorf("redis.database must be 0 or more, got %d", c.Database)
	}
	if c.Key == "" {
		return errors.New("redis.key must not be empty")
	}
	return nil
}

func init() {
	s := outputs.Define("redis", "redis", defaults,
		func(c *Config) bool { return c.Address != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "append the event's Falco JSON to a Redis list, or set it in a hash under its uuid"
	s.Batch = delivery.BatchPolicy{MaxEvents: 100, MaxBytes: 1 << 20, FlushInterval: 100 * time.Millisecond}
	outputs.Register(s)
}

// Redis is the output.
type Redis struct {
	pool *redis.Pool
	key  string
	hash bool
}

// New builds the pool; it connects on the first send, so a server down at start-up only
// makes sends fail (transiently) until it is up.
func New(c *Config, env outputs.Env) (*Redis, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	addr, opts := c.Address, []redis.DialOption{redis.DialDatabase(c.Database)}
	if c.Password != "" {
		opts = append(opts, redis.DialPassword(c.Password))
	}
	if c.Username != "" {
		opts = append(opts, redis.DialUsername(c.Username))
	}
	n := max(env.Policy.MaxConcurrentRequests, 1)
	pool := &redis.Pool{
		MaxActive: n, MaxIdle: n, Wait: true, IdleTimeout: 5 * time.Minute,
		// The attempt's context bounds the dial, AUTH and SELECT.
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr, opts...)
		},
	}
	return &Redis{pool: pool, key: c.Key, hash: strings.EqualFold(c.StorageType, "hashmap")}, nil
}

// Name implements delivery.Output.
func (r *Redis) Name() string { return "redis" }

// Send stores one event.
func (r *Redis) Send(ctx context.Context, ev *event.Event) error {
	return r.SendBatch(ctx, []*event.Event{ev})
}

// SendBatch stores the events with one command (RPUSH or HSET with every value), within the
// attempt's context.
func (r *Redis) SendBatch(ctx context.Context, evs []*event.Event) error {
	cmd := "RPUSH"
	if r.hash {
		cmd = "HSET"
	}
	args := make([]any, 0, 1+2*len(evs))
	args = append(args, r.key)
	for _, ev := range evs {
		if r.hash {
			args = append(args, ev.UUID)
		}
		args = append(args, ev.JSON())
	}
	conn, err := r.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("redis: connect: %w", err)
	}
	defer conn.Close() // back to the pool, or discarded when broken
	_, err = redis.DoContext(conn, ctx, cmd, args...)
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("redis: %s %s: %w", cmd, r.key, err)
	// The key holding another type does not change by retrying.
	var re redis.Error
	if errors.As(err, &re) && strings.HasPrefix(string(re), "WRONGTYPE") {
		return delivery.Permanent(wrapped)
	}
	return wrapped
}

// Close closes the pool's connections.
func (r *Redis) Close() error { return r.pool.Close() }
