package file

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestAppendsJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte(`{"rule":"existing"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := New(&Config{Path: path, MaxSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := f.Send(context.Background(), &event.Event{UUID: "u", Rule: "new", Priority: event.Alert, Time: time.Unix(1, 0).UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 4 || lines[0]["rule"] != "existing" || lines[3]["rule"] != "new" || lines[3]["priority"] != "Alert" {
		t.Errorf("lines %v", lines)
	}
	if f.Name() != "file" {
		t.Error("name")
	}
}

func TestRotatesBySize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	f, err := New(&Config{Path: path, MaxSize: 1, MaxBackups: 3})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 10_000)
	const n = 250 // ~2.5 MB: at least two rotations at 1 MB
	for i := 0; i < n; i++ {
		ev := &event.Event{Rule: "r", Priority: event.Alert, Time: time.Unix(1, 0).UTC(), OutputFields: map[string]any{"i": i, "pad": big}}
		if err := f.Send(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "events*.jsonl"))
	if len(files) < 3 {
		t.Fatalf("files %v: no rotation at maxsize 1 MB", files)
	}
	total := 0
	for _, p := range files {
		st, _ := os.Stat(p)
		if st.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, over maxsize", p, st.Size())
		}
		total += len(readLines(t, p))
	}
	if total != n {
		t.Errorf("%d lines across %d files, want %d", total, len(files), n)
	}
}

func TestConfig(t *testing.T) {
	if (&Config{OutputFile: "/tmp/x"}).File() != "/tmp/x" || (&Config{Path: "/a", OutputFile: "/b"}).File() != "/a" {
		t.Error("File()")
	}
	if err := (&Config{MaxSize: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "file.maxsize") {
		t.Errorf("maxsize: %v", err)
	}
	if err := (&Config{MaxBackups: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "file.maxbackups") {
		t.Errorf("maxbackups: %v", err)
	}
	if _, err := New(&Config{Path: "/nonexistent-dir-saker/x.jsonl"}); err == nil || !strings.Contains(err.Error(), "/nonexistent-dir-saker") {
		t.Errorf("missing dir: %v", err)
	}
}
