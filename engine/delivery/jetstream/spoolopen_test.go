package jetstream

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	natsjs "github.com/nats-io/nats.go/jetstream"
)

// A spool holding a stream of saker's name with other settings (written by another version
// or another program) is refused with the path and the setting at fault; saker neither
// changes nor deletes it.
func TestSpoolWithAnIncompatibleStreamIsReported(t *testing.T) {
	dir := t.TempDir()
	b := openSpool(t, dir, 0)
	ctx := context.Background()
	// As an older saker would have left it: interest retention.
	if err := b.js.DeleteStream(ctx, DefaultStream); err != nil {
		t.Fatal(err)
	}
	if _, err := b.js.CreateStream(ctx, natsjs.StreamConfig{Name: DefaultStream, Subjects: []string{"saker.out.>"},
		Retention: natsjs.InterestPolicy, Storage: natsjs.FileStorage, Discard: natsjs.DiscardNew}); err != nil {
		t.Fatal(err)
	}
	b.Shutdown()

	cfg := DefaultSpoolConfig()
	cfg.Path = dir
	b, err := OpenEmbedded(cfg, quiet())
	if err == nil {
		b.Shutdown()
		t.Fatal("a spool whose stream has interest retention opened")
	}
	for _, want := range []string{dir, "retention Interest", "does not change or delete it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// lines is a slog handler keeping the messages logged, for asserting on them.
type lines struct {
	slog.Handler
	got *[]string
}

func (l lines) Handle(_ context.Context, r slog.Record) error {
	*l.got = append(*l.got, r.Message)
	return nil
}
func (l lines) Enabled(context.Context, slog.Level) bool { return true }
func (l lines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l lines) WithGroup(string) slog.Handler            { return l }

// A message file cut short (a torn write at power loss: what spool.sync bounds) is
// recovered by the server up to its last whole record, with the server's warning in saker's
// log; the spool opens with the events before the cut.
func TestSpoolWithATruncatedMessageFileKeepsWhatIsWhole(t *testing.T) {
	dir := t.TempDir()
	b := openSpool(t, dir, 0)
	if err := b.AddOutput("webhook", policy()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := b.Publish(context.Background(), testEvent(i), []string{"webhook"}); err != nil {
			t.Fatal(err)
		}
	}
	b.Shutdown()
	block := filepath.Join(dir, "jetstream", "$G", "streams", DefaultStream, "msgs", "1.blk")
	st, err := os.Stat(block)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(block, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	var logged []string
	cfg := DefaultSpoolConfig()
	cfg.Path = dir
	b, err = OpenEmbedded(cfg, slog.New(lines{slog.DiscardHandler, &logged}))
	if err != nil {
		t.Fatalf("a spool with a truncated message file: %v", err)
	}
	defer b.Shutdown()
	if n := b.State().StoredEvents; n == 0 || n >= 50 {
		t.Errorf("%d events after cutting the message file in half, want the whole ones before the cut", n)
	}
	if !strings.Contains(strings.Join(logged, "\n"), "rebuild") {
		t.Errorf("the server's recovery is not in the log:\n%s", strings.Join(logged, "\n"))
	}
}
