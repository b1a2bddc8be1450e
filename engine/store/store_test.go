package store

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func ev(uuid, rule string, prio event.Priority, source, host string, tags []string, output string, fields map[string]any) *event.Event {
	return &event.Event{UUID: uuid, Rule: rule, Priority: prio, Source: source, Hostname: host, Tags: tags,
		Output: output, OutputFields: fields, Time: time.Date(2019, 5, 17, 15, 31, 56, 0, time.UTC)}
}

// storeOf opens a store (blocks of 4 events, so tests cross block boundaries) and adds evs
// synchronously.
func storeOf(t *testing.T, opts Options, evs ...*event.Event) *Store {
	t.Helper()
	if opts.BlockSize == 0 {
		opts.BlockSize = 4
	}
	opts.Log = quietLog()
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for _, e := range evs {
		s.add([]item{{ev: e, outputs: []string{"slack", "loki"}}})
	}
	return s
}

func sample() []*event.Event {
	return []*event.Event{
		ev("00000000-0000-4000-8000-000000000001", "Write below binary dir", event.Error, "syscall", "node-a", []string{"filesystem", "mitre_persistence"},
			"File below a known binary directory opened for writing (user=root command=touch /bin/hack)", map[string]any{"fd.name": "/bin/hack", "proc.cmdline": "touch /bin/hack"}),
		ev("00000000-0000-4000-8000-000000000002", "Terminal shell in container", event.Notice, "syscall", "node-b", []string{"shell"},
			"A shell was spawned in a container (pod=nginx-7d9f8b6c5-x2kzp)", map[string]any{"k8s.pod.name": "nginx-7d9f8b6c5-x2kzp"}),
		ev("00000000-0000-4000-8000-000000000003", "Create Sensitive Mount Pod", event.Warning, "k8s_audit", "apiserver", nil,
			"Pod started with sensitive mount (user=admin pod=evil)", map[string]any{"ka.user.name": "admin"}),
		ev("00000000-0000-4000-8000-000000000004", "Write below binary dir", event.Critical, "syscall", "node-a", []string{"filesystem"},
			"File below a known binary directory opened for writing (user=www-data command=curl -o /usr/bin/x)", map[string]any{"fd.name": "/usr/bin/x"}),
		ev("00000000-0000-4000-8000-000000000005", "Create Sensitive Mount Pod", event.Warning, "k8s_audit", "apiserver", []string{"k8s"},
			"Pod started with sensitive mount (user=bob pod=debug)", nil),
		ev("00000000-0000-4000-8000-000000000006", "Terminal shell in container", event.Notice, "syscall", "node-a", []string{"shell", "mitre_execution"},
			"A shell was spawned in a container (pod=redis-0)", map[string]any{"k8s.pod.name": "redis-0"}),
	}
}

func rules(t *testing.T, hits []Hit) []string {
	t.Helper()
	var out []string
	for _, h := range hits {
		var e struct {
			Rule string `json:"rule"`
			UUID string `json:"uuid"`
		}
		if err := json.Unmarshal(h.JSON, &e); err != nil {
			t.Fatalf("stored JSON %s: %v", h.JSON, err)
		}
		if e.UUID != h.UUID {
			t.Fatalf("hit uuid %s, JSON uuid %s", h.UUID, e.UUID)
		}
		out = append(out, e.Rule)
	}
	return out
}

func uuids(hits []Hit) string {
	var out []string
	for _, h := range hits {
		out = append(out, h.UUID[len(h.UUID)-1:])
	}
	return strings.Join(out, ",")
}

func TestSearchFilters(t *testing.T) {
	for _, path := range []string{"", "file"} {
		opts := Options{}
		if path != "" {
			opts.Path = filepath.Join(t.TempDir(), "ui.db")
		}
		s := storeOf(t, opts, sample()...)
		cases := []struct {
			name string
			q    Query
			want string // last uuid digits, newest first
		}{
			{"all", Query{}, "6,5,4,3,2,1"},
			{"priority any of, case-insensitive", Query{Priorities: []string{"critical", "ERROR"}}, "4,1"},
			{"rule exact, case-insensitive", Query{Rules: []string{"write below binary DIR"}}, "4,1"},
			{"source", Query{Sources: []string{"k8s_audit"}}, "5,3"},
			{"hostname and priority", Query{Hostnames: []string{"node-a"}, Priorities: []string{"notice"}}, "6"},
			{"tags any of", Query{Tags: []string{"shell", "k8s"}}, "6,5,2"},
			{"text word prefix", Query{Text: "ngin"}, "2"},
			{"text all words", Query{Text: "user=root touch"}, "1"},
			{"text in a field value", Query{Text: "redis-0"}, "6"},
			{"text and filter", Query{Text: "sensitive", Tags: []string{"k8s"}}, "5"},
			{"text inside a word does not match", Query{Text: "ginx"}, ""},
			{"a term with punctuation matches as written", Query{Text: "nginx-7d9f8b6c5-x2"}, "2"},
			{"not its words apart", Query{Text: "nginx-x2kzp"}, ""},
			{"a path", Query{Text: "/usr/bin"}, "4"},
			{"unknown rule", Query{Rules: []string{"nope"}}, ""},
		}
		for _, c := range cases {
			res, err := s.Search(c.q, 0, 50)
			if err != nil {
				t.Fatalf("%s %s: %v", path, c.name, err)
			}
			if got := uuids(res.Hits); got != c.want || res.All != len(res.Hits) {
				t.Errorf("%s %s: got %q (all %d), want %q", path, c.name, got, res.All, c.want)
			}
		}
		res, err := s.Search(Query{}, 2, 2)
		if err != nil || uuids(res.Hits) != "4,3" || res.All != 6 {
			t.Errorf("page 2 of 2: %q all %d err %v", uuids(res.Hits), res.All, err)
		}
		if r := rules(t, res.Hits); r[0] != "Write below binary dir" {
			t.Errorf("rules %v", r)
		}
		if res.Hits[0].Outputs[1] != "loki" {
			t.Errorf("outputs %v", res.Hits[0].Outputs)
		}
		if _, err := s.Search(Query{Priorities: []string{"bogus"}}, 0, 10); err == nil || !strings.Contains(err.Error(), `"bogus"`) {
			t.Errorf("bad priority: %v", err)
		}
	}
}

func TestCounts(t *testing.T) {
	s := storeOf(t, Options{}, sample()...)
	got, _, err := s.CountBy(Query{}, "priority")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"Error": 1, "Notice": 2, "Warning": 2, "Critical": 1}
	if len(got) != len(want) {
		t.Fatalf("by priority %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("by priority %v, want %v", got, want)
		}
	}
	tags, _, _ := s.CountBy(Query{Sources: []string{"syscall"}}, "tags")
	if tags["filesystem"] != 2 || tags["shell"] != 2 || tags["mitre_execution"] != 1 || tags["k8s"] != 0 {
		t.Errorf("tags %v", tags)
	}
	hosts, _, _ := s.CountBy(Query{Text: "pod"}, "hostname")
	if hosts["apiserver"] != 2 || hosts["node-b"] != 1 || hosts["node-a"] != 1 {
		t.Errorf("hosts with text pod: %v", hosts)
	}
	if _, _, err := s.CountBy(Query{}, "uuid"); err == nil || !strings.Contains(err.Error(), "priority, rule, source, hostname, tags") {
		t.Errorf("bad group by: %v", err)
	}
	n, _, _ := s.Count(Query{Rules: []string{"Terminal shell in container"}})
	if n != 2 {
		t.Errorf("count %d", n)
	}
}

func TestGetByUUID(t *testing.T) {
	s := storeOf(t, Options{}, sample()...)
	h, ok, err := s.Get("00000000-0000-4000-8000-00000000000A")
	if err != nil || ok {
		t.Fatalf("unknown uuid: %v %v", ok, err)
	}
	h, ok, err = s.Get("00000000-0000-4000-8000-000000000002")
	if err != nil || !ok || !strings.Contains(string(h.JSON), "nginx-7d9f8b6c5-x2kzp") {
		t.Fatalf("get: %v %v %s", ok, err, h.JSON)
	}
}

// TestRetention: the count and age limits hold while events flow, and expired blocks leave
// the file.
func TestRetention(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := newClock(now)
	path := filepath.Join(t.TempDir(), "ui.db")
	s := storeOf(t, Options{Path: path, MaxEvents: 10, MaxAge: time.Hour, Now: clk.Now})
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 25; i++ {
		s.add([]item{{ev: genEvent(r, i)}})
	}
	if st := s.Stats(); st.Events != 10 || st.Blocks > 4 {
		t.Fatalf("after 25 events with maxevents 10: %+v", st)
	}
	res, _ := s.Search(Query{}, 0, 100)
	if len(res.Hits) != 10 || !strings.HasPrefix(res.Hits[0].UUID, "00000018") || !strings.HasPrefix(res.Hits[9].UUID, "0000000f") {
		t.Fatalf("kept %d, newest %s, oldest %s", len(res.Hits), res.Hits[0].UUID, res.Hits[len(res.Hits)-1].UUID)
	}
	clk.set(now.Add(30 * time.Minute))
	s.add([]item{{ev: genEvent(r, 25)}})
	clk.set(now.Add(61 * time.Minute)) // the first 10 are now older than an hour
	s.mu.Lock()
	s.retain()
	s.mu.Unlock()
	if st := s.Stats(); st.Events != 1 {
		t.Fatalf("after maxage: %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, the file holds only what is live (and the open block written at Close).
	s2 := storeOf(t, Options{Path: path, MaxEvents: 10, MaxAge: time.Hour, Now: clk.Now})
	res, err := s2.Search(Query{}, 0, 100)
	if err != nil || len(res.Hits) != 1 || !strings.HasPrefix(res.Hits[0].UUID, "00000019") {
		t.Fatalf("reopened: %v %+v", err, res)
	}
}

// TestReopen: a file store keeps sealed and open blocks across a restart, and new events
// continue after them.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ui.db")
	s := storeOf(t, Options{Path: path}, sample()...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := storeOf(t, Options{Path: path}, ev("00000000-0000-4000-8000-000000000007", "Late", event.Alert, "syscall", "node-c", nil, "later", nil))
	res, err := s2.Search(Query{}, 0, 50)
	if err != nil || uuids(res.Hits) != "7,6,5,4,3,2,1" {
		t.Fatalf("reopened: %q %v", uuids(res.Hits), err)
	}
	res, _ = s2.Search(Query{Text: "x2kzp"}, 0, 50)
	if uuids(res.Hits) != "2" {
		t.Fatalf("text after reopen: %q", uuids(res.Hits))
	}
}

// TestOfferNeverBlocks: a full queue drops and counts instead of waiting.
func TestOfferNeverBlocks(t *testing.T) {
	s := storeOf(t, Options{QueueSize: 2})
	s.mu.Lock() // the writer cannot store anything meanwhile
	okN := 0
	for i := 0; i < 1000; i++ {
		if s.Offer(sample()[0], nil) {
			okN++
		}
	}
	s.mu.Unlock()
	// The writer, blocked on the lock, holds what it took; the queue holds 2; the rest drop.
	if s.Dropped() == 0 || uint64(okN)+s.Dropped() != 1000 {
		t.Fatalf("accepted %d, dropped %d", okN, s.Dropped())
	}
}

func TestSubscribe(t *testing.T) {
	s := storeOf(t, Options{})
	ch, stop := s.Subscribe()
	defer stop()
	if !s.Offer(sample()[1], nil) {
		t.Fatal("offer refused")
	}
	select {
	case b := <-ch:
		if !strings.Contains(string(b), "Terminal shell in container") {
			t.Fatalf("got %s", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event on the subscription")
	}
}

func TestTimeline(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := newClock(now)
	s := storeOf(t, Options{Now: clk.Now})
	for i, e := range sample() {
		clk.set(now.Add(time.Duration(i) * time.Minute))
		s.add([]item{{ev: e}})
	}
	b, _, err := s.Timeline(Query{}, now, now.Add(6*time.Minute), 3)
	if err != nil {
		t.Fatal(err)
	}
	// minutes 0,1 | 2,3 | 4,5
	if len(b) != 3 || b[0].Counts["Error"] != 1 || b[0].Counts["Notice"] != 1 || b[1].Counts["Warning"] != 1 || b[1].Counts["Critical"] != 1 || b[2].Counts["Notice"] != 1 {
		t.Fatalf("timeline %+v", b)
	}
}

// TestQueriesSeeWhatWasOffered: a query made right after Offer finds the alert, although the
// writer stores queued alerts only every batchInterval.
func TestQueriesSeeWhatWasOffered(t *testing.T) {
	s := storeOf(t, Options{})
	for i, e := range sample() {
		if !s.Offer(e, nil) {
			t.Fatal("offer refused")
		}
		res, err := s.Search(Query{}, 0, 100)
		if err != nil || res.All != i+1 {
			t.Fatalf("after %d offers a search finds %d (%v)", i+1, res.All, err)
		}
	}
}

// hashUUID is FNV-1a of the lowercase uuid, whichever way it was written.
func TestHashUUID(t *testing.T) {
	ref := func(u string) uint32 {
		h := fnv.New32a()
		_, _ = h.Write(bytes.ToLower([]byte(u)))
		return h.Sum32()
	}
	for _, u := range []string{"", "0a1B2c3D-4e5F-4000-8000-ABCDEF012345", "ÉVÉNEMENT-Ünïcode", "plain"} {
		if got, want := hashUUID([]byte(u)), ref(u); got != want {
			t.Errorf("hashUUID(%q) = %x, want %x", u, got, want)
		}
		if hashUUID([]byte(u)) != hashUUID(bytes.ToLower([]byte(u))) {
			t.Errorf("hashUUID(%q) depends on case", u)
		}
	}
}
