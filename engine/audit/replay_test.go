package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// outputIDs lists the id= of each alert line replay printed.
func outputIDs(t *testing.T, out []byte) string {
	t.Helper()
	var ids []string
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		a := decodeAlert(t, line)
		ids = append(ids, a.Output[strings.LastIndex(a.Output, "id=")+3:])
	}
	return strings.Join(ids, " ")
}

func TestReplayInputs(t *testing.T) {
	dir := t.TempDir()
	f1 := filepath.Join(dir, "a.log")
	long := `{"kind":"Event","auditID":"long","verb":"get","stageTimestamp":"2018-10-25T14:09:12Z","x":"` + strings.Repeat("x", 5000) + `"}`
	content := evA + "\n\n" + "garbage\n" + long + "\n" + `{"kind":"Event","verb":"get"}` + "\n" +
		`{"kind":"EventList","items":[` + evB + `]}` + "\r\n" + `[` + evA + `]`
	if err := os.WriteFile(f1, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	rp := &Replayer{Engine: testEngine(t), MaxLineSize: 1000, Stdin: strings.NewReader(evB + "\n")}
	var out bytes.Buffer
	if err := rp.Run(context.Background(), []string{f1, "-"}, &out); err != nil {
		t.Fatal(err)
	}
	if got, want := outputIDs(t, out.Bytes()), "a b a b"; got != want {
		t.Errorf("alerts for %q, want %q", got, want)
	}
	s := rp.Stats.Snapshot()
	if s.Received != 4 || s.Alerts != 4 || s.Skipped["malformed"] != 1 || s.Skipped["oversize"] != 1 || s.Skipped["bad_timestamp"] != 1 {
		t.Errorf("stats %+v", s)
	}
	if err := rp.Run(context.Background(), []string{filepath.Join(dir, "missing.log")}, &out); err == nil ||
		!strings.Contains(err.Error(), "missing.log") {
		t.Errorf("missing file: error %v, want one naming the file", err)
	}
}

func TestReplayFunc(t *testing.T) {
	f := filepath.Join(t.TempDir(), "a.log")
	if err := os.WriteFile(f, []byte(evA+"\n"+evB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := (&Replayer{Engine: testEngine(t)}).Run(context.Background(), []string{f}, &out); err != nil {
		t.Fatal(err)
	}
	if got := outputIDs(t, out.Bytes()); got != "a b" {
		t.Errorf("alerts for %q, want a b", got)
	}
}

func TestReplayCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rp := &Replayer{Engine: testEngine(t)}
	in := strings.Repeat(evA+"\n", 5000)
	err := rp.ReplayReader(ctx, "in", strings.NewReader(in), &bytes.Buffer{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("y", 600<<10) // longer than the reader's buffer
	in := "a\n" + long + "\nb\n" + strings.Repeat("z", 300<<10) + "\nc"
	lr := newLineReader(strings.NewReader(in), 400<<10)
	var got []string
	for {
		line, tooLong, err := lr.next()
		if err != nil {
			break
		}
		switch {
		case tooLong:
			got = append(got, "TOO-LONG")
		case len(line) > 10:
			got = append(got, "z*"+string(rune('0'+len(line)/(100<<10))))
		default:
			got = append(got, string(line))
		}
	}
	if want := "a TOO-LONG b z*3 c"; strings.Join(got, " ") != want {
		t.Fatalf("lines %q, want %q", strings.Join(got, " "), want)
	}
}

// chanSubmitter hands alerts to a channel, so tests wait for them instead of sleeping.
type chanSubmitter chan *event.Event

func (c chanSubmitter) Submit(ctx context.Context, ev *event.Event) error {
	select {
	case c <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func waitAlert(t *testing.T, c chanSubmitter, id string) {
	t.Helper()
	select {
	case a := <-c:
		if got := a.Output[strings.LastIndex(a.Output, "id=")+3:]; got != id {
			t.Fatalf("alert for %q, want %q", got, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no alert for %q", id)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func auditLine(id string) string {
	return `{"kind":"Event","auditID":"` + id + `","verb":"get","stageTimestamp":"2018-10-25T14:09:12Z"}`
}

func TestFollow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	late := filepath.Join(dir, "late.log")
	appendFile(t, path, auditLine("old")+"\n")
	alerts := make(chanSubmitter)
	opened := make(chan string, 10)
	f := &Follower{Rules: NewRules(testEngine(t)), Submitter: alerts, Poll: 5 * time.Millisecond,
		onOpen: func(p string) { opened <- p }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx, []string{path, late}) }()
	select {
	case p := <-opened:
		if p != path {
			t.Fatalf("opened %s first, want %s", p, path)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follower did not open the file")
	}

	// Existing content is skipped (tail -F); an appended line, written in two parts, is read once complete.
	appendFile(t, path, auditLine("1")[:30])
	appendFile(t, path, auditLine("1")[30:]+"\n")
	waitAlert(t, alerts, "1")

	// A file that did not exist is read from its start once it appears.
	appendFile(t, late, auditLine("late")+"\n")
	waitAlert(t, alerts, "late")

	// Rotation: the old file gets a last line, then is renamed and a new file created.
	appendFile(t, path, auditLine("2")+"\n")
	waitAlert(t, alerts, "2")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path+".1", auditLine("3")+"\n")
	appendFile(t, path, auditLine("4")+"\n")
	waitAlert(t, alerts, "3")
	waitAlert(t, alerts, "4")
	appendFile(t, path, auditLine("4b")+"\n")
	waitAlert(t, alerts, "4b")

	// Truncation: reading restarts at the beginning. The new content is shorter than what
	// was read, which is how truncation shows (as for tail -F).
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, auditLine("5")+"\n")
	waitAlert(t, alerts, "5")

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := f.Stats.Received.Load(); got != 7 {
		t.Errorf("received %d events, want 7", got)
	}
}
