// Package posttest holds the payload checks of the outputs built on falcopost: each recorded
// event is sent through the real output to a strict test endpoint, and the request it made
// is compared with saker's golden file and with the request falcosidekick made for the same
// event. Only tests import it.
package posttest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
)

// Request is one request an output made, as the endpoint saw it.
type Request struct {
	Method, Host, Path, Query string
	Header                    http.Header
	Body                      []byte
}

// header returns a header's value; "Host" is the request's host.
func (r Request) header(name string) string {
	if strings.EqualFold(name, "Host") {
		return r.Host
	}
	return r.Header.Get(name)
}

// recorder keeps the requests next answered with a 2xx status.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	reqs []Request
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rw := httptest.NewRecorder()
	rec.next.ServeHTTP(rw, r)
	for k, v := range rw.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rw.Code)
	_, _ = w.Write(rw.Body.Bytes())
	if rw.Code/100 == 2 {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, Request{Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: body})
		rec.mu.Unlock()
	}
}

func (rec *recorder) take() []Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := rec.reqs
	rec.reqs = nil
	return out
}

// Case is one recorded event: the request saker made and the one falcosidekick made.
type Case struct {
	Event         string
	Ours          Request
	Falcosidekick goldens.Recording
}

// Golden configures Check.
type Golden struct {
	// Variant names falcosidekick's recordings (testdata/falcosidekick/<Variant>).
	Variant string
	// Output builds the output under test sending to baseURL (http://127.0.0.1:PORT).
	Output func(t *testing.T, baseURL string) delivery.Sender
	// Endpoint is the strict stand-in for the service; only requests it accepts count.
	Endpoint http.Handler
	// Proxy: the output's URL names a host that does not resolve here (an in-cluster
	// service name); the test server is set as HTTP_PROXY and Output gets "" as baseURL.
	Proxy bool
	// Headers are compared with falcosidekick's value for value ("<VARIES>" there: present
	// here) and kept in the golden file; "Host" is the request's host.
	Headers []string
	// Kept are headers kept in the golden file that More compares its own way.
	Kept []string
	// Body turns a body into what is compared (default: decoded JSON).
	Body func(t testing.TB, body []byte) any
	// Dir is the folder of the golden files under testdata (several variants of one
	// output); default testdata itself.
	Dir string
	// More runs the output's own checks on each case.
	More func(t *testing.T, c Case)
}

// Check sends each of the 8 recorded events through the output and compares the request
// with saker's golden file (testdata/<event>.json in the output's package; go test -update
// rewrites them) and with falcosidekick's: the same method, path and query, the headers
// listed, and every value of its body (see SameJSON).
func Check(t *testing.T, g Golden) {
	t.Helper()
	rec := &recorder{next: g.Endpoint}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	base := srv.URL
	if g.Proxy {
		srv.Config.Handler = &connectProxy{next: rec}
		t.Setenv("HTTP_PROXY", srv.URL)
		t.Setenv("http_proxy", srv.URL)
		t.Setenv("NO_PROXY", "")
		t.Setenv("no_proxy", "")
		base = ""
	}
	out := g.Output(t, base)
	decode := g.Body
	if decode == nil {
		decode = func(t testing.TB, b []byte) any { return DecodeJSON(t, b) }
	}
	evs := goldens.Events(t, func(name string) string { return "uuid-" + name })
	for _, name := range goldens.Names(evs) {
		t.Run(name, func(t *testing.T) {
			if err := out.Send(context.Background(), evs[name]); err != nil {
				t.Fatal(err)
			}
			reqs := rec.take()
			if len(reqs) != 1 {
				t.Fatalf("%d requests accepted, want 1", len(reqs))
			}
			c := Case{Event: name, Ours: reqs[0], Falcosidekick: goldens.Recorded(t, g.Variant, name)}
			goldens.Check(t, filepath.Join("testdata", g.Dir, name+".json"), goldenFile(t, c.Ours, append(slices.Clone(g.Headers), g.Kept...)))
			f := c.Falcosidekick
			if c.Ours.Method != f.Method || c.Ours.Path != f.Path || c.Ours.Query != f.Query {
				t.Errorf("%s %s?%s, falcosidekick: %s %s?%s", c.Ours.Method, c.Ours.Path, c.Ours.Query, f.Method, f.Path, f.Query)
			}
			for _, h := range g.Headers {
				want, got := f.Headers[http.CanonicalHeaderKey(h)], c.Ours.header(h)
				if h == "Host" {
					want = f.Headers["Host"]
				}
				if want == "<VARIES>" && got != "" || got == want {
					continue
				}
				t.Errorf("header %s = %q, falcosidekick: %q", h, got, want)
			}
			SameJSON(t, "body", decode(t, []byte(f.Body)), decode(t, c.Ours.Body))
			if g.More != nil {
				g.More(t, c)
			}
		})
	}
}

// goldenFile is saker's golden form of a request: method, path, the headers compared and
// the Content-Type, and the body (as JSON when it is JSON).
func goldenFile(t testing.TB, r Request, headers []string) []byte {
	hs := map[string]string{"Content-Type": r.Header.Get("Content-Type")}
	for _, h := range headers {
		if h != "Host" {
			hs[http.CanonicalHeaderKey(h)] = r.header(h)
		}
	}
	var body any = string(r.Body)
	if json.Valid(r.Body) {
		body = json.RawMessage(r.Body)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{"method": r.Method, "path": r.Path, "query": r.Query, "headers": hs, "body": body}); err != nil {
		t.Fatal(err)
	}
	return goldens.IndentJSON(t, buf.Bytes())
}

// DecodeJSON decodes a JSON value, numbers as json.Number (as SameJSON compares them).
func DecodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, b)
	}
	return v
}

// SameJSON checks that ours holds every value of fsk (falcosidekick's): every key of every
// object with an equal value (ours may have more keys), lists element by element. A
// "<VARIES>" string of fsk only needs a non-empty value here; strings that are both RFC 3339
// times compare as instants (falcosidekick trims trailing zero fractions).
func SameJSON(t testing.TB, at string, fsk, ours any) {
	t.Helper()
	switch f := fsk.(type) {
	case map[string]any:
		o, ok := ours.(map[string]any)
		if !ok {
			t.Errorf("%s: %T, falcosidekick: an object", at, ours)
			return
		}
		keys := make([]string, 0, len(f))
		for k := range f {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v, ok := o[k]
			if !ok {
				t.Errorf("%s.%s missing (falcosidekick: %v)", at, k, f[k])
				continue
			}
			SameJSON(t, at+"."+k, f[k], v)
		}
	case []any:
		o, ok := ours.([]any)
		if !ok || len(o) != len(f) {
			t.Errorf("%s = %v, falcosidekick: %v", at, ours, fsk)
			return
		}
		for i := range f {
			SameJSON(t, at+"[]", f[i], o[i])
		}
	case string:
		o, ok := ours.(string)
		if ok && (o == f || f == "<VARIES>" && o != "" || sameTime(f, o)) {
			return
		}
		t.Errorf("%s = %v, falcosidekick: %q", at, ours, f)
	default:
		if !equalScalar(fsk, ours) {
			t.Errorf("%s = %v, falcosidekick: %v", at, ours, fsk)
		}
	}
}

func equalScalar(a, b any) bool {
	na, okA := a.(json.Number)
	nb, okB := b.(json.Number)
	if okA && okB {
		fa, errA := na.Float64()
		fb, errB := nb.Float64()
		return errA == nil && errB == nil && fa == fb
	}
	return a == b
}

func sameTime(a, b string) bool {
	ta, errA := time.Parse(time.RFC3339Nano, a)
	tb, errB := time.Parse(time.RFC3339Nano, b)
	return errA == nil && errB == nil && ta.Equal(tb)
}

// connectProxy is an HTTP proxy as saker's client uses one (CONNECT, then the request in
// the tunnel): it serves the tunnelled requests with next, whatever host they name.
type connectProxy struct{ next http.Handler }

func (p *connectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "a CONNECT proxy", http.StatusMethodNotAllowed)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if _, err := rw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n"); err != nil || rw.Flush() != nil {
		conn.Close()
		return
	}
	// Requests in the tunnel are read from rw's buffer first: the client may have sent one
	// right behind the CONNECT.
	l := &oneConn{done: make(chan struct{})}
	l.conn = &bufferedConn{Conn: conn, r: rw.Reader, closed: l}
	go func() { _ = (&http.Server{Handler: p.next, ReadHeaderTimeout: 5 * time.Second}).Serve(l) }()
}

type bufferedConn struct {
	net.Conn
	r      *bufio.Reader
	closed *oneConn
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// Close ends the tunnel's server with its one connection.
func (c *bufferedConn) Close() error {
	_ = c.closed.Close()
	return c.Conn.Close()
}

// oneConn is a listener handing out one connection, then blocking until closed.
type oneConn struct {
	conn net.Conn
	once sync.Once
	done chan struct{}
}

func (l *oneConn) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *oneConn) Addr() net.Addr { return l.conn.LocalAddr() }

// DecodeEvent reads one Falco event as a strict receiver does: no unknown field, nothing
// after it, and the fields every Falco event has (output, priority, rule, time).
func DecodeEvent(r io.Reader) (*event.Event, error) {
	ev := &event.Event{}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return ev, err
	}
	if dec.More() {
		return ev, errors.New("data after the event")
	}
	if ev.Output == "" || ev.Priority == event.Default || ev.Rule == "" || ev.Time.IsZero() {
		return ev, fmt.Errorf("not a Falco event: output, priority, rule and time are required")
	}
	return ev, nil
}

// Server starts endpoint on a local port for the test's duration.
func Server(t testing.TB, endpoint http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(endpoint)
	t.Cleanup(srv.Close)
	return srv
}

// Must returns the output New built, failing the test on its error.
func Must[O delivery.Sender](t testing.TB, o O, err error) delivery.Sender {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// Delivery holds the output newOutput builds to the delivery engine's promises with
// endpoint standing in for the service: nothing lost while the service is down
// (deliverytest.DownThenUp), and its minimumpriority honoured (deliverytest.OnlyCritical).
func Delivery(t *testing.T, newOutput func(t *testing.T, baseURL string) delivery.Sender, endpoint http.Handler) {
	t.Run("DownThenUpLosesNothing", func(t *testing.T) {
		deliverytest.DownThenUp(t, func(base string) delivery.Output { return newOutput(t, base) }, endpoint)
	})
	t.Run("MinimumPriority", func(t *testing.T) {
		deliverytest.OnlyCritical(t, func(base string) delivery.Output { return newOutput(t, base) }, endpoint)
	})
}

// HostPort splits a test server's base URL (http://127.0.0.1:PORT) for outputs configured
// by host and port rather than by URL.
func HostPort(t testing.TB, baseURL string) (string, int) {
	t.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}

// Refused checks a configuration error: it says want (the key at fault, the rule broken)
// and never SECRET, the word tests put in the secret values of the configuration.
func Refused(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("Validate() = %v, want an error saying %q without the secret values", err, want)
	}
}

// Refuses checks configuration errors: for each case, the configuration valid returns,
// changed by the case's mod, is refused with an error saying the case's key (see Refused).
func Refuses[C any, P interface {
	*C
	Validate() error
}](t testing.TB, valid func() P, cases map[string]func(P)) {
	t.Helper()
	for want, mod := range cases {
		c := valid()
		mod(c)
		Refused(t, c.Validate(), want)
	}
}

// Regions checks the addresses of a regional output (section, its endpoints by region):
// region eu gives euURL, an unknown region is refused naming section.region, and an
// endpoint that is not an http(s) URL is refused naming section.endpoint.
func Regions(t testing.TB, section string, endpoints map[string]string, euURL string) {
	t.Helper()
	r := outputs.DefaultRegional()
	r.Region = "eu"
	if u, err := r.URL(section, endpoints); err != nil || u != euURL {
		t.Errorf("eu: %s %v, want %s", u, err, euURL)
	}
	r.Region = "mars"
	if _, err := r.URL(section, endpoints); err == nil || !strings.Contains(err.Error(), section+".region") {
		t.Errorf("region mars: %v", err)
	}
	r.Endpoint = "localhost:8080/v2"
	if _, err := r.URL(section, endpoints); err == nil || !strings.Contains(err.Error(), section+".endpoint") {
		t.Errorf("endpoint without a scheme: %v", err)
	}
}
