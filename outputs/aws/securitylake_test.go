package aws

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/saker-dev/saker/config"
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/testpeers"
)

func newTestLake(t *testing.T, g *versitygw, bucket string) *SecurityLake {
	t.Helper()
	c := gwConfig(g, "")
	c.SecurityLake = SecurityLakeConfig{Bucket: bucket, Region: "eu-west-1", Prefix: "ext/falco", AccountID: "123456789012"}
	o, err := NewSecurityLake(c, testEnv())
	if err != nil {
		t.Fatalf("NewSecurityLake: %v", err)
	}
	return o
}

// lakeKey is the custom source layout.
var lakeKey = regexp.MustCompile(`^ext/falco/region=eu-west-1/accountId=123456789012/eventDay=\d{8}/[0-9a-f-]{36}\.parquet$`)

// decodeLake reads every Parquet file of the bucket back into OCSF findings.
func decodeLake(t *testing.T, g *versitygw, bucket string) (files int, rows []ocsfFinding) {
	t.Helper()
	for key, body := range g.objects(t, bucket, "ext/") {
		if !lakeKey.MatchString(key) {
			t.Errorf("key %q is not the custom source layout", key)
		}
		got, err := parquet.Read[ocsfFinding](bytes.NewReader(body), int64(len(body)))
		if err != nil {
			t.Fatalf("%s is not a Parquet file of findings: %v", key, err)
		}
		files++
		rows = append(rows, got...)
	}
	return files, rows
}

// TestSecurityLakeVersitygw writes a batch of events to versitygw and decodes the Parquet
// file read back: one OCSF Security Finding per event, with falcosidekick's mapping.
func TestSecurityLakeVersitygw(t *testing.T) {
	g := startVersitygw(t, 0, "", "")
	g.createBucket(t, "lake")
	o := newTestLake(t, g, "lake")
	a, b := testEvent("lake-a", event.Critical), testEvent("lake-b", event.Notice)
	b.Hostname = ""
	if err := o.SendBatch(context.Background(), []*event.Event{a, b}); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	files, rows := decodeLake(t, g, "lake")
	if files != 1 || len(rows) != 2 {
		t.Fatalf("%d files, %d rows; want 1 file of 2", files, len(rows))
	}
	r := rows[0]
	if r.ClassUID != 2001 || r.TypeUID != 200101 || r.CategoryUID != 2 || r.Message != "lake-a" || r.Finding.Title != "lake-a" ||
		r.Finding.Desc != a.Output || r.Finding.UID != a.UUID || r.Time != a.Time.UnixMilli() || r.Status != "Critical" ||
		r.SeverityID != 5 || r.Severity != "Critical" || r.RawData != string(a.JSON()) ||
		r.Metadata.Product.Name != "Falco" || strings.Join(r.Metadata.Labels, ",") != "t1,t2" ||
		len(r.Finding.Types) != 1 || r.Finding.Types[0] != "syscall" {
		t.Errorf("finding = %+v", r)
	}
	want := "hostname=host-1 proc.name=sh proc.pid=42 "
	got := ""
	for _, ob := range r.Observables {
		got += ob.Name + "=" + ob.Value + " "
	}
	if got != want {
		t.Errorf("observables = %q, want %q", got, want)
	}
	if rows[1].SeverityID != 2 || rows[1].Severity != "Low" || len(rows[1].Observables) != 2 {
		t.Errorf("second finding = %+v", rows[1])
	}
}

// TestSecurityLakePeerDownThenUp: batches made while versitygw is down are all written once
// it is back, every event in exactly one file.
func TestSecurityLakePeerDownThenUp(t *testing.T) {
	g := startVersitygw(t, 0, "", "")
	g.createBucket(t, "late-lake")
	g.Stop()
	o := newTestLake(t, g, "late-lake")
	p := deliverytest.Policy("")
	p.Batch = delivery.BatchPolicy{MaxEvents: 4, MaxBytes: 1 << 20, FlushInterval: 20 * time.Millisecond}
	eng := deliverytest.Start(t, o, p)
	const n = 10
	for i := range n {
		deliverytest.Publish(t, eng, testEvent(fmt.Sprintf("lake-late-%d", i), event.Error))
	}
	deliverytest.WaitFailing(t, eng)
	g = startVersitygw(t, g.Port, g.Dir, "")
	testpeers.Eventually(t, 20*time.Second, func() bool { _, rows := decodeLake(t, g, "late-lake"); return len(rows) >= n },
		"not every event written")
	if lost := eng.Stop(2 * time.Second); lost != 0 {
		t.Errorf("%d events lost", lost)
	}
	_, rows := decodeLake(t, g, "late-lake")
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.Message]++
	}
	wantEachOnce(t, seen, "lake-late-%d", n)
}

// TestSecurityLakeConfig: the mandatory keys are named when missing, and falcosidekick's
// interval and batchsize reach the engine's batch keys (interval clamped to 5..60 minutes).
func TestSecurityLakeConfig(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*SecurityLakeConfig)
		key    string
	}{
		{func(l *SecurityLakeConfig) { l.Region = "" }, "aws.securitylake.region"},
		{func(l *SecurityLakeConfig) { l.Prefix = "" }, "aws.securitylake.prefix"},
		{func(l *SecurityLakeConfig) { l.AccountID = "12345" }, "aws.securitylake.accountid"},
		{func(l *SecurityLakeConfig) { l.Endpoint = "nohost" }, "aws.securitylake.endpoint"},
	} {
		c := defaults()
		c.SecurityLake = SecurityLakeConfig{Bucket: "lake", Region: "eu-west-1", Prefix: "ext/falco", AccountID: "123456789012"}
		tc.mutate(&c.SecurityLake)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("Validate() = %v, want an error naming %s", err, tc.key)
		}
	}
	for in, want := range map[string]time.Duration{"1": 5 * time.Minute, "15": 15 * time.Minute, "90": time.Hour} {
		var pol delivery.Policy
		_, err := config.Load(config.Options{Environ: []string{"AWS_SECURITYLAKE_INTERVAL=" + in, "AWS_SECURITYLAKE_BATCHSIZE=50"},
			Sections: []config.Section{{Path: "aws.securitylake", Target: &pol}}, Aliases: securityLakeAliases})
		if err != nil {
			t.Fatalf("load interval %s: %v", in, err)
		}
		if pol.Batch.FlushInterval != want || pol.Batch.MaxEvents != 50 {
			t.Errorf("interval %s, batchsize 50 = %+v, want %v and 50", in, pol.Batch, want)
		}
	}
}
