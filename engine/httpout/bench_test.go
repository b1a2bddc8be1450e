package httpout

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchmarkClient measures one webhook-style request per event against a local net/http
// receiver, with the allocations per request: the client's own share of an event's cost.
func benchmarkClient(b *testing.B, send func(c *Client, ctx context.Context, req Request) error) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	b.Cleanup(srv.Close)
	c, err := New(Options{CheckCert: true, MaxConns: 8})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"output":"16:31:56.746609046: Error File below a known binary directory opened for writing","priority":"Error","rule":"Write below binary dir","time":"2019-05-17T15:31:56.746609046Z"}`)
	req := Request{URL: srv.URL + "/", ContentType: "application/json; charset=utf-8", Body: body}
	b.ReportAllocs()
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := send(c, ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkSend(b *testing.B) {
	benchmarkClient(b, func(c *Client, ctx context.Context, req Request) error { return c.Send(ctx, req) })
}

func BenchmarkDo(b *testing.B) {
	benchmarkClient(b, func(c *Client, ctx context.Context, req Request) error {
		_, err := c.Do(ctx, req)
		return err
	})
}
