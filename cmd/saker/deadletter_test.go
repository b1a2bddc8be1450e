package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// lines reads a JSON-lines file's "uuid" (events) or "event.uuid" (dead-letter records).
func uuidsIn(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			UUID  string
			Event struct{ UUID string }
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, rec.UUID+rec.Event.UUID)
	}
	return out
}

// The events an output gave up on are replayed from the dead-letter file to that output
// only, once it is fixed: same uuids, the other outputs do not get them twice.
func TestDeadletterReplay(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	out := newSink(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if broken.Load() {
			w.WriteHeader(http.StatusBadRequest) // permanent: dead-lettered at once
		}
	})
	dir := t.TempDir()
	dead, file := filepath.Join(dir, "dead.jsonl"), filepath.Join(dir, "events.jsonl")
	d := start(t, "WEBHOOK_ADDRESS="+out.srv.URL+"/", "DEADLETTER_PATH="+dead, "FILE_PATH="+file)
	for i := 0; i < 3; i++ {
		d.mustPost(t, falcoEvent)
	}
	until := time.Now().Add(deadline)
	for len(uuidsIn(t, dead)) < 3 || len(uuidsIn(t, file)) < 3 {
		if time.Now().After(until) {
			t.Fatalf("dead letter %v, file output %v", uuidsIn(t, dead), uuidsIn(t, file))
		}
		time.Sleep(20 * time.Millisecond)
	}
	failed := uuidsIn(t, dead)
	aside := filepath.Join(dir, "dead.replay.jsonl")
	if err := os.Rename(dead, aside); err != nil {
		t.Fatal(err)
	}
	for drained := false; !drained; {
		select {
		case <-out.hits:
		default:
			drained = true
		}
	}

	// --dry-run and filters send nothing.
	code, stdout, stderr := run(t, nil, "deadletter", "replay", "--url", d.url, "--dry-run", aside)
	if code != 0 || !strings.Contains(stdout, "would replay 3 events") || !strings.Contains(stdout, "would send event "+failed[0]+" to webhook (permanent)") {
		t.Fatalf("dry run: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, nil, "deadletter", "replay", "--url", d.url, "--output", "slack", aside)
	if code != 0 || !strings.Contains(stdout, "replayed 0 events, skipped 3") {
		t.Fatalf("--output slack: exit %d\n%s%s", code, stdout, stderr)
	}

	broken.Store(false)
	code, stdout, stderr = run(t, nil, "deadletter", "replay", "--url", d.url, "--output", "webhook", aside)
	if code != 0 || !strings.Contains(stdout, "replayed 3 events, skipped 0 (--output/--reason), failed 0") {
		t.Fatalf("replay: exit %d\n%s%s", code, stdout, stderr)
	}
	want := map[string]bool{}
	for _, u := range failed {
		want[u] = true
	}
	for len(want) > 0 {
		h := out.next(t)
		var ev struct{ UUID string }
		_ = json.Unmarshal(h.body, &ev)
		if !want[ev.UUID] {
			t.Fatalf("webhook got %s, not one of the dead-lettered events", h.body)
		}
		delete(want, ev.UUID)
	}
	time.Sleep(200 * time.Millisecond)
	if got := uuidsIn(t, file); len(got) != 3 {
		t.Errorf("the file output got %d events, want its 3: a replay goes to the output that gave up only", len(got))
	}
	if got := uuidsIn(t, dead); len(got) != 0 {
		t.Errorf("replayed events dead-lettered again: %v", got)
	}
}

// A saker that cannot be reached stops the replay; the records not sent go to --rest.
func TestDeadletterReplayUnreachable(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "dead.jsonl")
	rec := `{"time":"2026-01-01T00:00:00Z","output":"webhook","reason":"expired","attempts":3,"event":` + falcoEvent + "}\n"
	if err := os.WriteFile(in, []byte(rec+"not json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rest := filepath.Join(dir, "rest.jsonl")
	code, _, stderr := run(t, nil, "deadletter", "replay", "--url", "http://127.0.0.1:1", "--rest", rest, in)
	if code != 1 || !strings.Contains(stderr, "saker unreachable") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(rest); string(b) != rec {
		t.Errorf("--rest holds %q, want the record not sent", b)
	}
	code, _, stderr = run(t, nil, "deadletter", "replay", "--url", "ftp://x", in)
	if code != 2 || !strings.Contains(stderr, `--url "ftp://x" must be an http:// or https:// address`) {
		t.Errorf("--url ftp://x: exit %d: %s", code, stderr)
	}
}
