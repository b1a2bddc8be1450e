package timescaledb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

// schema is falcosidekick's table (its documentation's example, without the trailing comma
// that made it invalid) with a customfields and a templatedfields column. A plain table:
// Debian's PostgreSQL has no Timescale extension for create_hypertable.
const schema = `CREATE TABLE falco_events (
	time TIMESTAMPTZ NOT NULL,
	rule TEXT,
	priority VARCHAR(20),
	source VARCHAR(20),
	output TEXT,
	tags TEXT,
	hostname TEXT,
	environment TEXT,
	k8s_namespace TEXT
);`

var env = outputs.Env{CustomFields: []string{"environment"}, TemplatedFields: []string{"K8s_Namespace"}}

// enrich adds the fields the enrichment would: customfields environment=prod and the
// templated K8s_Namespace ("null" when the event has no namespace, as falcosidekick's
// documentation suggests).
func enrich(ev *event.Event) *event.Event {
	ev = ev.Clone()
	ev.OutputFields["environment"] = "pr\"od\""
	ns, ok := ev.OutputFields["k8s.ns.name"].(string)
	if !ok {
		ns = "null"
	}
	ev.OutputFields["K8s_Namespace"] = ns
	return ev
}

func TestInsertGolden(t *testing.T) {
	o, err := New(&Config{Host: "db", Port: 5432, User: "u", HypertableName: "Public.Falco_Events"}, env)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	evs := goldens.Events(t, nil)
	var b strings.Builder
	for _, name := range goldens.Names(evs) {
		sql, args := o.Insert(enrich(evs[name]))
		fmt.Fprintf(&b, "%s\n%s\n", name, sql)
		for i, a := range args {
			if tm, ok := a.(time.Time); ok {
				a = tm.UTC().Format(time.RFC3339Nano)
			}
			fmt.Fprintf(&b, "  $%d = %#v\n", i+1, a)
		}
	}
	goldens.Check(t, filepath.Join("testdata", "golden", "inserts.txt"), []byte(b.String()))
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Host: "h", Port: 0, User: "u", HypertableName: "t"}, "timescaledb.port"},
		{Config{Host: "h", Port: 5432, User: "", HypertableName: "t"}, "timescaledb.user"},
		{Config{Host: "h", Port: 5432, User: "u", HypertableName: ""}, "timescaledb.hypertablename"},
		{Config{Host: "h", Port: 5432, User: "u", HypertableName: "a.b.c"}, "timescaledb.hypertablename"},
		{Config{Host: "h", Port: 5432, User: "u", HypertableName: "a..b"}, "timescaledb.hypertablename"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	if err := (&Config{}).Validate(); err != nil {
		t.Errorf("disabled output: %v", err)
	}
}

// postgres is a PostgreSQL server of the test's own, in a temporary data directory.
type postgres struct {
	dir  string
	port int
	proc *testpeers.Proc
}

// pgBin finds a PostgreSQL server program (Debian keeps them in /usr/lib/postgresql/N/bin).
func pgBin(t *testing.T, name string) string {
	t.Helper()
	testpeers.Need(t, "postgresql")
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(m) == 0 {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		t.Fatalf("PostgreSQL's %s not found in /usr/lib/postgresql/*/bin or PATH (apt-get install postgresql)", name)
	}
	return m[len(m)-1]
}

// asPostgres runs argv as the postgres user when the test runs as root (initdb and the
// server refuse root).
func asPostgres(argv ...string) []string {
	if os.Geteuid() != 0 {
		return argv
	}
	return append([]string{"runuser", "-u", "postgres", "--"}, argv...)
}

// newPostgres makes a data directory holding the falco_events table; start runs the server.
func newPostgres(t *testing.T) *postgres {
	t.Helper()
	initdb, server := pgBin(t, "initdb"), pgBin(t, "postgres")
	dir, err := os.MkdirTemp("", "saker-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, initdb needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	run := func(stdin string, argv ...string) {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	run("", asPostgres(initdb, "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")...)
	// single-user mode creates the table before any client can connect
	run(strings.ReplaceAll(schema, "\n", " ")+"\n", asPostgres(server, "--single", "-D", data, "-F", "postgres")...)
	return &postgres{dir: data}
}

// start runs the server on port (0: a free one) and waits until it answers queries.
func (p *postgres) start(t *testing.T, port int) {
	t.Helper()
	if port == 0 {
		port = testpeers.FreePort(t)
	}
	p.port = port
	p.proc = testpeers.Start(t, "postgres", asPostgres(pgBin(t, "postgres"), "-D", p.dir, "-p", strconv.Itoa(port),
		"-k", filepath.Dir(p.dir), "-c", "listen_addresses=127.0.0.1", "-F"), nil, func() bool {
		c, err := pgx.Connect(context.Background(), p.url())
		if err != nil {
			return false
		}
		_ = c.Close(context.Background())
		return true
	}, 60*time.Second)
}

func (p *postgres) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

func (p *postgres) config() *Config {
	c := defaults()
	c.Host, c.Port, c.Database = "127.0.0.1", p.port, "postgres"
	return c
}

// row is one row read back.
type row struct {
	Time                                      time.Time
	Rule, Priority, Source, Output            string
	Tags, Hostname, Environment, K8sNamespace *string
}

func (p *postgres) rows(t *testing.T) []row {
	t.Helper()
	c, err := pgx.Connect(context.Background(), p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	rs, err := c.Query(context.Background(), "SELECT time, rule, priority, source, output, tags, hostname, environment, k8s_namespace FROM falco_events ORDER BY output")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rs, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func text(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// TestPostgres inserts the recorded events (a batch, then one by one) into a real
// PostgreSQL and reads the rows back.
func TestPostgres(t *testing.T) {
	pg := newPostgres(t)
	pg.start(t, 0)
	o, err := New(pg.config(), env)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	evs := goldens.Events(t, nil)
	names := goldens.Names(evs)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var sent []*event.Event
	for _, n := range names {
		sent = append(sent, enrich(evs[n]))
	}
	if err := o.SendBatch(ctx, sent[:4]); err != nil {
		t.Fatal(err)
	}
	for _, ev := range sent[4:] {
		if err := o.Send(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	rows := pg.rows(t)
	if len(rows) != len(sent) {
		t.Fatalf("%d rows, want %d", len(rows), len(sent))
	}
	for _, ev := range sent {
		tags, host := "NULL", "NULL"
		if len(ev.Tags) > 0 {
			tags = strings.Join(ev.Tags, ",")
		}
		if ev.Hostname != "" {
			host = ev.Hostname
		}
		ns, _ := ev.OutputFields["k8s.ns.name"].(string)
		if ns == "" {
			ns = "NULL"
		}
		want := fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s|prod|%s", ev.Time.Truncate(time.Microsecond).UTC().Format(time.RFC3339Nano),
			ev.Rule, ev.Priority, ev.Source, ev.Output, tags, host, ns)
		found := false
		var all []string
		for _, r := range rows {
			got := fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s|%s|%s", r.Time.UTC().Format(time.RFC3339Nano), r.Rule, r.Priority,
				r.Source, r.Output, text(r.Tags), text(r.Hostname), text(r.Environment), text(r.K8sNamespace))
			found = found || got == want
			all = append(all, got)
		}
		if !found {
			t.Errorf("no row %s among\n%s", want, strings.Join(all, "\n"))
		}
	}

	// a row the table refuses (source longer than VARCHAR(20)) fails for good; the batch is
	// rolled back and the others are reported for a retry
	bad := enrich(evs[names[0]])
	bad.Output, bad.Source = "too long", strings.Repeat("s", 30)
	good := enrich(evs[names[1]])
	good.Output = "retried"
	err = o.SendBatch(ctx, []*event.Event{good, bad})
	var be *delivery.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 2 || !delivery.IsPermanent(be.Failed[1]) || delivery.IsPermanent(be.Failed[0]) ||
		!strings.Contains(be.Failed[1].Error(), "22001") {
		t.Fatalf("batch with a bad row: %v (%#v)", err, be)
	}
	if n := len(pg.rows(t)); n != len(sent) {
		t.Fatalf("%d rows after the rolled back batch, want %d", n, len(sent))
	}
	if err := o.SendBatch(ctx, []*event.Event{good}); err != nil {
		t.Fatal(err)
	}
}

// TestDownThenUp publishes 10 events while the server is down, waits until the output
// failed, starts PostgreSQL on that port and checks that each row was inserted once.
func TestDownThenUp(t *testing.T) {
	pg := newPostgres(t)
	pg.port = testpeers.FreePort(t)
	o, err := New(pg.config(), outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	p := deliverytest.Policy("")
	p.Batch = delivery.BatchPolicy{MaxEvents: 3, MaxBytes: 1 << 20, FlushInterval: 50 * time.Millisecond}
	eng := deliverytest.Start(t, o, p)
	const n = 10
	for i := range n {
		deliverytest.Publish(t, eng, &event.Event{Rule: fmt.Sprintf("rule %02d", i), Priority: event.Notice,
			Output: fmt.Sprintf("saker test event %02d", i), Time: time.Now(), Source: "syscalls"})
	}
	deliverytest.WaitFailing(t, eng)
	pg.start(t, pg.port)
	testpeers.Eventually(t, 30*time.Second, func() bool { return len(pg.rows(t)) >= n }, "not all %d rows arrived", n)
	eng.Stop(time.Second)
	rows := pg.rows(t)
	if len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	for i, r := range rows {
		if r.Output != fmt.Sprintf("saker test event %02d", i) {
			t.Errorf("row %d: %q", i, r.Output)
		}
	}
}

// TestDeadline: a server that accepts the connection and never answers must not hold Send
// beyond the attempt's deadline, and the failure is worth a retry.
func TestDeadline(t *testing.T) {
	_, port, _ := net.SplitHostPort(testpeers.Silent(t))
	c := defaults()
	c.Host = "127.0.0.1"
	c.Port, _ = strconv.Atoi(port)
	o, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for _, send := range []func(context.Context) error{
		func(ctx context.Context) error { return o.Send(ctx, &event.Event{Rule: "r", Time: time.Now()}) },
		func(ctx context.Context) error {
			return o.SendBatch(ctx, []*event.Event{{Rule: "r", Time: time.Now()}})
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := send(ctx)
		cancel()
		if err == nil || delivery.IsPermanent(err) || time.Since(start) > 3*time.Second {
			t.Errorf("silent server: %v after %s, want a transient error soon after 300ms", err, time.Since(start))
		}
	}
}
