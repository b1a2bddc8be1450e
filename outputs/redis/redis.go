// Package redis stores each event's Falco JSON in Redis as falcosidekick's redis output
// does: appended to a list (RPUSH key) or set in a hash under the event's uuid (HSET key
// uuid), through one go-redis client whose pool is the output's concurrency. A batch is one
// RPUSH or HSET command, so it is stored whole or not at all. go-redis's own retries are
// off: the delivery engine retries.
package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

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
	cl   *goredis.Client
	key  string
	hash bool
}

// New builds the client; it connects on the first send, so a server down at start-up only
// makes sends fail (transiently) until it is up.
func New(c *Config, env outputs.Env) (*Redis, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cl := goredis.NewClient(&goredis.Options{
		Addr: c.Address, Username: c.Username, Password: c.Password, DB: c.Database,
		MaxRetries:               -1,   // the engine retries
		ContextTimeoutEnabled:    true, // the attempt's deadline bounds dial, write and read
		PoolSize:                 max(env.Policy.MaxConcurrentRequests, 1),
		DisableIdentity:          true, // no CLIENT SETINFO: fewer round trips, older servers
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	return &Redis{cl: cl, key: c.Key, hash: strings.EqualFold(c.StorageType, "hashmap")}, nil
}

// Name implements delivery.Output.
func (r *Redis) Name() string { return "redis" }

// Send stores one event.
func (r *Redis) Send(ctx context.Context, ev *event.Event) error {
	return r.SendBatch(ctx, []*event.Event{ev})
}

// SendBatch stores the events with one command (RPUSH or HSET with every value).
func (r *Redis) SendBatch(ctx context.Context, evs []*event.Event) error {
	args := make([]any, 0, 2*len(evs))
	for _, ev := range evs {
		if r.hash {
			args = append(args, ev.UUID)
		}
		args = append(args, ev.JSON())
	}
	var err error
	if r.hash {
		err = r.cl.HSet(ctx, r.key, args...).Err()
	} else {
		err = r.cl.RPush(ctx, r.key, args...).Err()
	}
	if err == nil {
		return nil
	}
	cmd := "RPUSH"
	if r.hash {
		cmd = "HSET"
	}
	wrapped := fmt.Errorf("redis: %s %s: %w", cmd, r.key, err)
	// The key holding another type does not change by retrying.
	if goredis.HasErrorPrefix(err, "WRONGTYPE") {
		return delivery.Permanent(wrapped)
	}
	return wrapped
}

// Close closes the connections.
func (r *Redis) Close() error { return r.cl.Close() }
