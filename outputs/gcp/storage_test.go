package gcp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

const testBucket = "falco-alerts"

// fakeGCS is a fake-gcs-server process (the JSON API of Cloud Storage, in memory) holding
// the test bucket from start-up.
type fakeGCS struct {
	URL string
}

// startFakeGCS runs fake-gcs-server on port (0: any free port). The bucket is a folder of
// its -data directory, so it exists before the first request is served.
func startFakeGCS(t *testing.T, port int) *fakeGCS {
	t.Helper()
	bin := testpeers.Bin(t, "fake-gcs-server")
	if port == 0 {
		port = testpeers.FreePort(t)
	}
	data := t.TempDir()
	if err := os.Mkdir(filepath.Join(data, testBucket), 0o755); err != nil {
		t.Fatal(err)
	}
	p := strconv.Itoa(port)
	f := &fakeGCS{URL: "http://127.0.0.1:" + p}
	testpeers.Start(t, "fake-gcs-server", []string{bin, "-scheme", "http", "-host", "127.0.0.1", "-port", p,
		"-public-host", "127.0.0.1:" + p, "-external-url", f.URL, "-backend", "memory", "-data", data, "-log-level", "warn"},
		nil, func() bool { return testpeers.HTTPOK(f.URL + "/storage/v1/b/" + testBucket) }, 20*time.Second)
	return f
}

// objects lists the bucket's object names.
func (f *fakeGCS) objects(t *testing.T) []string {
	t.Helper()
	var list struct {
		Items []struct{ Name string }
	}
	f.getJSON(t, "/storage/v1/b/"+testBucket+"/o", &list)
	var names []string
	for _, it := range list.Items {
		names = append(names, it.Name)
	}
	return names
}

// read returns an object's content.
func (f *fakeGCS) read(t *testing.T, name string) []byte {
	t.Helper()
	resp, err := http.Get(f.URL + "/storage/v1/b/" + testBucket + "/o/" + url.PathEscape(name) + "?alt=media")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("read %s: %d %s", name, resp.StatusCode, b)
	}
	return b
}

func (f *fakeGCS) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(f.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func storageConfig(endpoint, prefix string) *Config {
	c := defaults()
	c.Storage = StorageConfig{Bucket: testBucket, Prefix: prefix, Endpoint: endpoint}
	return c
}

func newStorage(t *testing.T, c *Config) *Storage {
	t.Helper()
	s, err := NewStorage(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStorageFakeGCS: each recorded event becomes one object named as falcosidekick names
// it (<prefix>/<date>/<RFC 3339 time with nanoseconds>.json), whose content, read back from
// fake-gcs-server, is the Falco JSON falcosidekick marshals.
func TestStorageFakeGCS(t *testing.T) {
	f := startFakeGCS(t, 0)
	s := newStorage(t, storageConfig(f.URL, "falco"))
	clock := time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.UTC)
	s.now = func() time.Time { clock = clock.Add(time.Millisecond); return clock }
	evs := goldens.Events(t, func(name string) string { return "0000-" + name })
	want := map[string]string{}
	for _, name := range goldens.Names(evs) {
		if err := s.Send(context.Background(), evs[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want[objectName("falco", clock)] = name
	}
	got := f.objects(t)
	if len(got) != len(want) {
		t.Fatalf("bucket holds %v, want %d objects", got, len(want))
	}
	for _, obj := range got {
		name, ok := want[obj]
		if !ok {
			t.Errorf("unexpected object %q", obj)
			continue
		}
		goldens.SameEventJSON(t, "gcpcloudrun", name, f.read(t, obj))
	}
	if n := "falco/2026-11-20/2026-11-20T10:00:00.124456789Z.json"; want[n] == "" {
		t.Errorf("object names %v do not follow falcosidekick's, e.g. %s", got, n)
	}
}

// TestStorageNoPrefixAndCollision: without a prefix the name starts with "/" as
// falcosidekick's does; an upload that would replace an existing object (the same
// nanosecond) fails, transiently, and leaves the first object as it was.
func TestStorageNoPrefixAndCollision(t *testing.T) {
	f := startFakeGCS(t, 0)
	s := newStorage(t, storageConfig(f.URL, ""))
	at := time.Date(2026, 11, 20, 10, 0, 0, 5, time.UTC)
	s.now = func() time.Time { return at }
	evs := numbered(2)
	if err := s.Send(context.Background(), evs[0]); err != nil {
		t.Fatal(err)
	}
	err := s.Send(context.Background(), evs[1])
	if err == nil || delivery.IsPermanent(err) || !strings.Contains(err.Error(), "412") {
		t.Errorf("second upload at the same instant: %v, want a transient 412", err)
	}
	got := f.objects(t)
	if len(got) != 1 || got[0] != "/2026-11-20/2026-11-20T10:00:00.000000005Z.json" {
		t.Fatalf("objects %q", got)
	}
	if b := f.read(t, got[0]); !strings.Contains(string(b), "saker test event 00") {
		t.Errorf("the first object was replaced: %s", b)
	}
}

// TestStorageDownThenUp: nothing is lost while Cloud Storage is unreachable.
func TestStorageDownThenUp(t *testing.T) {
	testpeers.Bin(t, "fake-gcs-server")
	port := testpeers.FreePort(t)
	s := newStorage(t, storageConfig(fmt.Sprintf("http://127.0.0.1:%d", port), "falco"))
	eng := deliverytest.Start(t, s, deliverytest.Policy(""))
	const n = 10
	for _, ev := range numbered(n) {
		deliverytest.Publish(t, eng, ev)
	}
	deliverytest.WaitFailing(t, eng)
	f := startFakeGCS(t, port)
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(f.objects(t)) >= n }, "fake-gcs-server did not receive all %d events", n)
	eng.Stop(200 * time.Millisecond)
	var texts []string
	for _, obj := range f.objects(t) {
		texts = append(texts, string(f.read(t, obj)))
	}
	checkEachOnce(t, texts, n)
}

// TestStorageEmulatorHost: STORAGE_EMULATOR_HOST (host:port, as Google's client reads it)
// points the output at fake-gcs-server without authentication.
func TestStorageEmulatorHost(t *testing.T) {
	f := startFakeGCS(t, 0)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(f.URL, "http://"))
	if err := newStorage(t, storageConfig("", "falco")).Send(context.Background(), numbered(1)[0]); err != nil {
		t.Fatal(err)
	}
	if got := f.objects(t); len(got) != 1 {
		t.Fatalf("objects %v", got)
	}
}
