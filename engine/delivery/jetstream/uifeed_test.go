package jetstream

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/store"
	"github.com/saker-dev/saker/internal/testpeers"
)

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Path: path, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func feed(t *testing.T, b *Bus, st *store.Store) *UIFeed {
	t.Helper()
	f, err := b.FeedUI(st, UIRetention{MaxAge: time.Hour, MaxEvents: 1000})
	if err != nil {
		t.Fatal(err)
	}
	testpeers.Eventually(t, 20*time.Second, f.Ready, "ui feed not set up")
	return f
}

// storedSeqs waits until st holds want events and returns how many times each seq is stored.
func storedSeqs(t *testing.T, st *store.Store, want int) map[string]int {
	t.Helper()
	testpeers.Eventually(t, 20*time.Second, func() bool {
		n, _, err := st.Count(store.Query{})
		return err == nil && n >= want
	}, "store never held %d events", want)
	res, err := st.Search(store.Query{}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, h := range res.Hits {
		seen[h.UUID]++
	}
	if res.All != want {
		t.Fatalf("store holds %d events, want %d: %v", res.All, want, seen)
	}
	return seen
}

// Each replica's UI shows the events every replica accepted, with the outputs they were
// queued for; a replica that starts later (an empty store) catches up on what the feed
// holds, and one that restarts on its stored events reads back only what it missed.
func TestUIFeedSharesEveryReplicasEvents(t *testing.T) {
	port := testpeers.FreePort(t)
	startNATS(t, port, t.TempDir())
	a, b := openExternal(t, port), openExternal(t, port)
	defer a.Shutdown()
	defer b.Shutdown()
	stA := openStore(t, "")
	defer stA.Close()
	bPath := filepath.Join(t.TempDir(), "ui.db")
	stB := openStore(t, bPath)
	fa, fb := feed(t, a, stA), feed(t, b, stB)
	defer fa.Close()

	for i := 0; i < 4; i++ {
		f := fa
		if i%2 == 1 {
			f = fb
		}
		if !f.Offer(testEvent(i), []string{"webhook", "slack"}) {
			t.Fatalf("offer %d refused", i)
		}
	}
	for name, st := range map[string]*store.Store{"a": stA, "b": stB} {
		for uuid, n := range storedSeqs(t, st, 4) {
			if n != 1 {
				t.Fatalf("replica %s stores %s %d times", name, uuid, n)
			}
		}
	}
	hit, ok, err := stA.Get("uuid-1") // accepted by b
	if err != nil || !ok || len(hit.Outputs) != 2 || hit.Outputs[1] != "slack" {
		t.Fatalf("replica a's copy of b's event: %+v %v %v", hit, ok, err)
	}

	// A new replica with an empty store sees everything the feed holds.
	c := openExternal(t, port)
	defer c.Shutdown()
	stC := openStore(t, "")
	defer stC.Close()
	fc := feed(t, c, stC)
	defer fc.Close()
	storedSeqs(t, stC, 4)

	// Replica b restarts on its stored events while a accepts two more: it reads back those
	// two and stores none of the first four again.
	fb.Close()
	if err := stB.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 4; i < 6; i++ {
		fa.Offer(testEvent(i), []string{"webhook"})
	}
	storedSeqs(t, stA, 6)
	stB = openStore(t, bPath)
	defer stB.Close()
	fb = feed(t, b, stB)
	defer fb.Close()
	for uuid, n := range storedSeqs(t, stB, 6) {
		if n != 1 {
			t.Fatalf("restarted replica b stores %s %d times", uuid, n)
		}
	}
}

// Until the feed is set up (NATS unreachable at start), a replica's UI still records what
// its own inputs accept.
func TestUIFeedBeforeSetUpStoresLocally(t *testing.T) {
	port := testpeers.FreePort(t)
	b := openExternal(t, port) // nothing listens there yet
	defer b.Shutdown()
	st := openStore(t, "")
	defer st.Close()
	f, err := b.FeedUI(st, UIRetention{MaxAge: time.Hour, MaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Ready() {
		t.Fatal("feed ready without a server")
	}
	if !f.Offer(testEvent(1), nil) {
		t.Fatal("offer refused")
	}
	storedSeqs(t, st, 1)
}
