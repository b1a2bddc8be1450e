package aws

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/event"
)

// benchEvents are n events of a typical size (about 1 KiB of Falco JSON each).
func benchEvents(n int) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		ev := testEvent(fmt.Sprintf("bench-%d", i), event.Warning)
		ev.Output = strings.Repeat("o", 600)
		evs[i] = ev
	}
	return evs
}

// okServer answers every request with body (and reads the request), the cheapest peer.
func okServer(b *testing.B, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = io.WriteString(w, body)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkSecurityLakeParquet is the CPU of turning 1000 events into an OCSF Parquet file.
func BenchmarkSecurityLakeParquet(b *testing.B) {
	evs := benchEvents(1000)
	for b.Loop() {
		if _, err := parquetFile(evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}

// BenchmarkS3Send is the CPU of one PutObject (request, SigV4 signature, answer) per event.
func BenchmarkS3Send(b *testing.B) {
	srv := okServer(b, "")
	c := emulatorConfig(srv.URL)
	c.S3.Bucket = "bench"
	o, err := NewS3(c, testEnv())
	if err != nil {
		b.Fatal(err)
	}
	ev := benchEvents(1)[0]
	for b.Loop() {
		if err := o.Send(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCloudWatchLogsBatch is the CPU per event of PutLogEvents batches of 500.
func BenchmarkCloudWatchLogsBatch(b *testing.B) {
	srv := okServer(b, "{}")
	c := emulatorConfig(srv.URL)
	c.CloudWatchLogs.LogGroup, c.CloudWatchLogs.LogStream = "g", "s"
	w, err := NewCloudWatchLogs(c, testEnv())
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(500)
	for b.Loop() {
		if err := w.SendBatch(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}
