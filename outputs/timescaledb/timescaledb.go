// Package timescaledb inserts each event as a row of a TimescaleDB hypertable (any
// PostgreSQL table), with falcosidekick's columns: time, rule, priority, source, output,
// tags, hostname, and one column per customfields/templatedfields key. saker creates no
// table: the hypertable is made beforehand (create_hypertable), or a plain table serves on a
// PostgreSQL without the Timescale extension.
//
// Batches are sent in one round trip (a pgx batch, one implicit transaction): when a row is
// rejected the whole batch is rolled back, the rejected row is reported as failed for good
// and the others are retried.
package timescaledb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// Config is the timescaledb.* section.
type Config struct {
	Host           string `koanf:"host" doc:"PostgreSQL/TimescaleDB host; setting it enables the output"`
	Port           int    `koanf:"port" doc:"port"`
	User           string `koanf:"user" doc:"user name"`
	Password       string `koanf:"password" secret:"true" doc:"password"`
	Database       string `koanf:"database" doc:"database; empty: the user's name, as PostgreSQL does"`
	HypertableName string `koanf:"hypertablename" doc:"table the rows go to (schema.table allowed); saker does not create it"`
}

func defaults() *Config {
	return &Config{Port: 5432, User: "postgres", Password: "postgres", HypertableName: "falco_events"}
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	if c.Host == "" {
		return nil
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("timescaledb.port must be between 1 and 65535, got %d", c.Port)
	}
	if c.User == "" {
		return errors.New("timescaledb.user is empty")
	}
	_, err := tableName(c.HypertableName)
	return err
}

// tableName quotes the table's name (and schema) as PostgreSQL would read it unquoted
// (lower case), so any name is safe in the statement.
func tableName(name string) (string, error) {
	name = strings.TrimSpace(name)
	parts := strings.Split(name, ".")
	if name == "" || len(parts) > 2 {
		return "", fmt.Errorf("timescaledb.hypertablename must be table or schema.table, got %q", name)
	}
	for i, p := range parts {
		if p == "" {
			return "", fmt.Errorf("timescaledb.hypertablename must be table or schema.table, got %q", name)
		}
		parts[i] = strings.ToLower(p)
	}
	return pgx.Identifier(parts).Sanitize(), nil
}

func init() {
	s := outputs.Define("timescaledb", "timescaledb", defaults,
		func(c *Config) bool { return c.Host != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "insert each event as a row of a TimescaleDB hypertable (or PostgreSQL table)"
	s.Batch = delivery.BatchPolicy{MaxEvents: 100, MaxBytes: 1 << 20, FlushInterval: 200 * time.Millisecond}
	outputs.Register(s)
}

// TimescaleDB is the output: a connection pool sized by maxconcurrentrequests.
type TimescaleDB struct {
	pool   *pgxpool.Pool
	table  string
	fields []string // customfields and templatedfields keys
	where  string   // host:port/database, for errors
}

// New builds the pool; it does not connect: the first insert does. The PG* environment
// variables (PGSSLMODE, PGSSLROOTCERT, ...) apply to what the keys leave unset.
func New(c *Config, env outputs.Env) (*TimescaleDB, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	table, _ := tableName(c.HypertableName)
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("timescaledb: PG* environment: %w", err)
	}
	cc := pc.ConnConfig
	cc.Host, cc.Port, cc.User, cc.Password = c.Host, uint16(c.Port), c.User, c.Password
	if c.Database != "" {
		cc.Database = c.Database
	}
	cc.Fallbacks = nil // the host and port given, not PGHOST's
	if n := env.Policy.MaxConcurrentRequests; n > 0 {
		pc.MaxConns = int32(n)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("timescaledb: %w", err)
	}
	fields := append(append([]string(nil), env.CustomFields...), env.TemplatedFields...)
	return &TimescaleDB{pool: pool, table: table, fields: fields,
		where: c.Host + ":" + strconv.Itoa(c.Port) + "/" + cc.Database}, nil
}

// Name implements delivery.Output.
func (t *TimescaleDB) Name() string { return "timescaledb" }

// Insert is the event's statement and arguments, with falcosidekick's columns: time, rule,
// priority, source, output, tags (comma-separated, when there are tags), hostname (when
// set), and each customfields/templatedfields key the event carries as text, with double
// quotes removed and "null" (any case) as SQL NULL.
func (t *TimescaleDB) Insert(ev *event.Event) (string, []any) {
	cols := []string{"time", "rule", "priority", "source", "output"}
	args := []any{ev.Time, ev.Rule, ev.Priority.String(), ev.Source, ev.Output}
	if len(ev.Tags) > 0 {
		cols, args = append(cols, "tags"), append(args, strings.Join(ev.Tags, ","))
	}
	if ev.Hostname != "" {
		cols, args = append(cols, "hostname"), append(args, ev.Hostname)
	}
	for _, f := range t.fields {
		v, ok := ev.OutputFields[f].(string)
		if !ok {
			continue
		}
		cols = append(cols, pgx.Identifier{strings.ToLower(f)}.Sanitize())
		if v = strings.ReplaceAll(v, `"`, ""); strings.EqualFold(v, "null") {
			args = append(args, nil)
		} else {
			args = append(args, v)
		}
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO ")
	sb.WriteString(t.table)
	sb.WriteString(" (")
	sb.WriteString(strings.Join(cols, ", "))
	sb.WriteString(") VALUES (")
	for i := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("$" + strconv.Itoa(i+1))
	}
	sb.WriteString(")")
	return sb.String(), args
}

// Send inserts one row.
func (t *TimescaleDB) Send(ctx context.Context, ev *event.Event) error {
	sql, args := t.Insert(ev)
	if _, err := t.pool.Exec(ctx, sql, args...); err != nil {
		return t.classify(fmt.Errorf("timescaledb: insert into %s at %s: %w", t.table, t.where, err))
	}
	return nil
}

// SendBatch inserts the rows in one round trip. A rejected row rolls the batch back: it is
// reported failed (permanently, when the server refused its data) and the others are
// retried.
func (t *TimescaleDB) SendBatch(ctx context.Context, evs []*event.Event) error {
	b := &pgx.Batch{}
	for _, ev := range evs {
		sql, args := t.Insert(ev)
		b.Queue(sql, args...)
	}
	br := t.pool.SendBatch(ctx, b)
	bad, badErr := -1, error(nil)
	for i := range evs {
		if _, err := br.Exec(); err != nil {
			bad, badErr = i, err
			break
		}
	}
	closeErr := br.Close()
	if bad < 0 {
		if closeErr != nil {
			return t.classify(fmt.Errorf("timescaledb: insert %d rows into %s at %s: %w", len(evs), t.table, t.where, closeErr))
		}
		return nil
	}
	err := t.classify(fmt.Errorf("timescaledb: insert into %s at %s: %w", t.table, t.where, badErr))
	if !delivery.IsPermanent(err) {
		return err // the server or the connection failed, not a row: retry them all
	}
	failed := make(map[int]error, len(evs))
	for i := range evs {
		failed[i] = fmt.Errorf("timescaledb: not inserted: row %d of the batch was rejected and the batch rolled back", bad)
	}
	failed[bad] = err
	return &delivery.BatchError{Failed: failed}
}

// classify marks what the server refused for the data or the statement (SQLSTATE classes
// 22 data exception, 23 integrity constraint violation, 42 syntax error or undefined
// table/column) as permanent; connection failures, timeouts and the server's other errors
// (too many connections, shutting down, authentication while it starts) are retried.
func (t *TimescaleDB) classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && len(pe.Code) == 5 {
		switch pe.Code[:2] {
		case "22", "23", "42":
			return delivery.Permanent(err)
		}
	}
	return err
}

// Close closes the pool's connections.
func (t *TimescaleDB) Close() error {
	t.pool.Close()
	return nil
}
