package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/testpeers"
)

// gwConfig is the aws section pointing awss3 at versitygw with its root credentials.
func gwConfig(g *versitygw, bucket string) *Config {
	c := emulatorConfig(g.URL)
	c.Region, c.AccessKeyID, c.SecretAccessKey = g.Region, gwAccess, gwSecret
	c.S3.Bucket = bucket
	return c
}

func newTestS3(t *testing.T, c *Config) *S3 {
	t.Helper()
	o, err := NewS3(c, testEnv())
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return o
}

// keyLayout is falcosidekick's object key: PREFIX/YYYY-MM-DD/<RFC 3339 nano time>.json.
var keyLayout = regexp.MustCompile(`^falco/(\d{4}-\d{2}-\d{2})/(\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:\d{2}))\.json$`)

// TestS3Versitygw writes events to versitygw (which checks the SigV4 signature) with the
// default prefix and canned ACL, and reads every object back: one per event, the body the
// event's Falco JSON byte for byte, the key in falcosidekick's layout.
func TestS3Versitygw(t *testing.T) {
	g := startVersitygw(t, 0, "", "")
	g.createBucket(t, "falco-events")
	o := newTestS3(t, gwConfig(g, "falco-events"))
	want := map[string]*event.Event{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 5 {
		ev := testEvent(fmt.Sprintf("s3-rule-%d", i), event.Warning)
		want[ev.Rule] = ev
		if err := o.Send(ctx, ev); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	objs := g.objects(t, "falco-events", "falco/")
	if len(objs) != len(want) {
		t.Fatalf("%d objects, want %d: %v", len(objs), len(want), objs)
	}
	for key, body := range objs {
		m := keyLayout.FindStringSubmatch(key)
		if m == nil {
			t.Errorf("key %q is not PREFIX/YYYY-MM-DD/<RFC3339Nano>.json", key)
		} else if !strings.HasPrefix(m[2], m[1]) {
			t.Errorf("key %q: the day folder is not the time's day", key)
		}
		var got struct{ Rule string }
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("object %s is not JSON: %v", key, err)
		}
		ev, ok := want[got.Rule]
		if !ok {
			t.Fatalf("unexpected or duplicate object %s: %s", key, body)
		}
		delete(want, got.Rule)
		if string(body) != string(ev.JSON()) {
			t.Errorf("object %s = %s, want %s", key, body, ev.JSON())
		}
	}
}

// TestS3Refusals: a wrong secret (versitygw checks the signature) and a missing bucket are
// permanent errors naming the object; nothing listening is transient.
func TestS3Refusals(t *testing.T) {
	g := startVersitygw(t, 0, "", "")
	g.createBucket(t, "exists")
	c := gwConfig(g, "exists")
	c.SecretAccessKey = "not-the-secret"
	err := newTestS3(t, c).Send(context.Background(), testEvent("bad sig", event.Error))
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "not-the-secret") {
		t.Errorf("wrong secret = %v, want a permanent error without the secret", err)
	}
	err = newTestS3(t, gwConfig(g, "missing-bucket")).Send(context.Background(), testEvent("no bucket", event.Error))
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "s3://missing-bucket/") {
		t.Errorf("missing bucket = %v, want a permanent error naming it", err)
	}
	c = emulatorConfig(fmt.Sprintf("http://127.0.0.1:%d", testpeers.FreePort(t)))
	c.S3.Bucket = "exists"
	if err := newTestS3(t, c).Send(context.Background(), testEvent("down", event.Error)); err == nil || delivery.IsPermanent(err) {
		t.Errorf("connection refused = %v, want a transient error", err)
	}
}

// TestS3PeerDownThenUp: events published while versitygw is down are all written once it is
// back (same port, same storage), by the engine's retries.
func TestS3PeerDownThenUp(t *testing.T) {
	g := startVersitygw(t, 0, "", "")
	g.createBucket(t, "late")
	g.Stop()
	o := newTestS3(t, gwConfig(g, "late"))
	eng := deliverytest.Start(t, o, deliverytest.Policy(""))
	const n = 8
	for i := range n {
		deliverytest.Publish(t, eng, testEvent(fmt.Sprintf("s3-late-%d", i), event.Error))
	}
	deliverytest.WaitFailing(t, eng)
	g = startVersitygw(t, g.Port, g.Dir, "")
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(g.objects(t, "late", "falco/")) >= n },
		"versitygw holds %d of %d objects", len(g.objects(t, "late", "falco/")), n)
	if lost := eng.Stop(2 * time.Second); lost != 0 {
		t.Errorf("%d events lost", lost)
	}
	seen := map[string]int{}
	for _, body := range g.objects(t, "late", "falco/") {
		var got struct{ Rule string }
		_ = json.Unmarshal(body, &got)
		seen[got.Rule]++
	}
	wantEachOnce(t, seen, "s3-late-%d", n)
}

func TestS3KeyAndTime(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("", 3600))
	if got := s3Key("falco", at); got != "falco/2026-03-04/2026-03-04T05:06:07.00000089+01:00.json" {
		t.Errorf("s3Key = %q", got)
	}
	if got := s3Key("", at); strings.HasPrefix(got, "/") {
		t.Errorf("s3Key without prefix = %q: leading slash", got)
	}
	prev := objectTime()
	for range 1000 {
		next := objectTime()
		if !next.After(prev) {
			t.Fatalf("objectTime not strictly increasing: %v then %v", prev, next)
		}
		prev = next
	}
}
