// Package httpout is the one HTTP client policy every HTTP output shares: connection pooling
// sized to the output's concurrency, TLS (checkcert, a custom CA, mutual TLS), custom headers,
// and the mapping of response status codes onto the delivery engine's retry decisions.
package httpout

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpproxy"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/tlsconf"
)

// UserAgent is sent on every request.
var UserAgent = "saker"

// TLSFiles locates the client certificates shared by all outputs (falcosidekick's
// mutualtlsfilespath / mutualtlsclient.* and tlsclient.cacertfile keys).
type TLSFiles struct {
	CertFile   string // client certificate, for mutual TLS
	KeyFile    string // client key, for mutual TLS
	CACertFile string // CA that signed the server, added to the system pool
}

// Options configure one output's client.
type Options struct {
	// CheckCert verifies the server certificate (falcosidekick's <output>.checkcert, default true).
	CheckCert bool
	// MutualTLS presents the client certificate from TLSFiles.
	MutualTLS bool
	TLS       TLSFiles
	// Headers are added to every request (<output>.customheaders).
	Headers map[string]string
	// MaxConns bounds connections per host; set it to the output's concurrency.
	MaxConns int
	// TLSConfig, when set, replaces the configuration CheckCert, MutualTLS and TLS describe:
	// for a server whose CA and client credentials come from elsewhere than the shared
	// files (the Kubernetes API server of a kubeconfig or a service account).
	TLSConfig *tls.Config
}

// Client sends requests for one output. It is built on fasthttp rather than net/http: a
// webhook-style output sends one request per event, and net/http's per-request goroutine
// hand-offs and allocations were the largest cost of delivery in ingest profiles (end to end
// 0.21 of a bare server with net/http against 0.30-0.39 with this client, same run). It uses
// fasthttp's per-host connection pool but runs each exchange itself so the caller's context
// reaches it: cancelling ctx aborts a request in flight (its connection is closed). It does
// HTTP/1.1 with keep-alive, one request at a time per connection (never pipelined: a POST
// must not be pipelined, RFC 9112 9.3.2), does not follow redirects (a 3xx is a permanent
// error), and honours HTTP_PROXY/HTTPS_PROXY/NO_PROXY.
type Client struct {
	headers  map[string]string
	tlsCfg   *tls.Config
	maxConns int
	// dial replaces fasthttp's dialer when a proxy is configured.
	dial fasthttp.DialFunc

	mu sync.RWMutex
	// The connection pools by host, of plain HTTP and of HTTPS receivers.
	hosts, tlsHosts map[string]*fasthttp.HostClient
	// checkedURL is the last URL found valid: an output sends to one URL, so it is parsed once.
	checkedURL atomic.Pointer[string]
}

// checkURL fails unless raw is an absolute http(s) URL.
func (c *Client) checkURL(raw string) error {
	if p := c.checkedURL.Load(); p != nil && *p == raw {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an absolute http(s) URL")
	}
	checked := raw // a copy, so that only a newly checked URL escapes to the heap, not every call's
	c.checkedURL.Store(&checked)
	return nil
}

// dialTimeout bounds connecting, as net/http's dialer did.
const dialTimeout = 10 * time.Second

// idleTimeout closes keep-alive connections unused this long (fasthttp pools and
// NewTransport alike).
const idleTimeout = 90 * time.Second

// New builds a client. It fails when a certificate file cannot be read, naming the file.
func New(opts Options) (*Client, error) {
	tlsCfg, err := tlsConfig(opts)
	if err != nil {
		return nil, err
	}
	conns := opts.MaxConns
	if conns <= 0 {
		conns = 4
	}
	c := &Client{headers: opts.Headers, tlsCfg: tlsCfg, maxConns: conns, hosts: map[string]*fasthttp.HostClient{},
		tlsHosts: map[string]*fasthttp.HostClient{}}
	if proxyConfigured() {
		c.dial = fasthttpproxy.FasthttpProxyHTTPDialerTimeout(dialTimeout)
	}
	return c, nil
}

func proxyConfigured() bool {
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}

// NewTransport builds the transport New uses (TLS, pooling) for outputs whose SDK needs its
// own http.RoundTripper (go-elasticsearch), so they still share one TLS policy. Headers in
// opts are ignored: the SDK sets them.
func NewTransport(opts Options) (*http.Transport, error) {
	tlsCfg, err := tlsConfig(opts)
	if err != nil {
		return nil, err
	}
	conns := opts.MaxConns
	if conns <= 0 {
		conns = 4
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          conns * 2,
		MaxIdleConnsPerHost:   conns * 2,
		IdleConnTimeout:       idleTimeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}, nil
}

func tlsConfig(opts Options) (*tls.Config, error) {
	if opts.TLSConfig != nil {
		return opts.TLSConfig, nil
	}
	return ClientTLS(opts.CheckCert, opts.MutualTLS, opts.TLS)
}

// ClientTLS is the one client TLS policy of every output, HTTP or not: checkCert=false skips
// server verification (the user's explicit choice), files.CACertFile is added to the system
// roots, and mutualTLS presents files.CertFile/KeyFile. Errors name the file that failed.
func ClientTLS(checkCert, mutualTLS bool, files TLSFiles) (*tls.Config, error) {
	f := tlsconf.Files{CACertFile: files.CACertFile}
	if mutualTLS {
		if files.CertFile == "" || files.KeyFile == "" {
			return nil, fmt.Errorf("mutual TLS needs a client certificate and key (mutualtlsclient.certfile, mutualtlsclient.keyfile)")
		}
		f.CertFile, f.KeyFile = files.CertFile, files.KeyFile
	}
	return tlsconf.Client(checkCert, f)
}

// DefaultTLSFiles returns falcosidekick's default file names inside mutualtlsfilespath.
func DefaultTLSFiles(dir string) TLSFiles {
	return TLSFiles{CertFile: filepath.Join(dir, "client.crt"), KeyFile: filepath.Join(dir, "client.key"),
		CACertFile: filepath.Join(dir, "ca.crt")}
}

// Request is one HTTP call.
type Request struct {
	Method      string // default POST
	URL         string
	ContentType string
	Body        []byte
	Headers     map[string]string // per-request headers, applied after the output's custom headers
	// LogURL is how the URL appears in errors and logs when the URL itself is a secret
	// (Slack and Teams webhook URLs); default: URL without credentials or key parameters.
	LogURL string
	// RetryAfter reads the delay a 429 or 503 answer asks for from its body, for services
	// that say it there rather than in a Retry-After header (Telegram's
	// parameters.retry_after). The header wins when both are present.
	RetryAfter func(body []byte) (time.Duration, bool)
	// TransientStatus lists statuses this receiver answers while it is starting or
	// reconfiguring, retried like a 503 instead of failing permanently (Node-RED answers 404
	// until its flows have started).
	TransientStatus []int
	// AcceptStatus lists non-2xx statuses returned as a Response rather than an error, for
	// callers that act on them (the Kubernetes API's 404 Not Found and 409 Conflict).
	AcceptStatus []int
}

// Response is what a successful call returned, for outputs that read the answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// maxErrorBody caps how much of an error response is quoted in the error message.
const maxErrorBody = 512

// maxResponseBody caps how much of a success response is read.
const maxResponseBody = 4 << 20

// Do sends req and maps the outcome onto the delivery engine's errors: 2xx is success; 408,
// 429 and 5xx are transient (with Retry-After honoured on 429/503); any other status is
// Permanent; network errors and timeouts are transient. Errors name the method, URL (without
// credentials) and status, and quote the start of the response body.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	return c.roundTrip(ctx, req, true)
}

// Send is Do for outputs that only need the outcome (webhook-style, one request per event):
// a successful answer's headers and body are not copied out, which is an allocation of a
// header map and a body per event saved.
func (c *Client) Send(ctx context.Context, req Request) error {
	_, err := c.roundTrip(ctx, req, false)
	return err
}

// roundTrip is Do; keep says whether a successful answer is copied into the Response.
func (c *Client) roundTrip(ctx context.Context, req Request, keep bool) (*Response, error) {
	method := req.Method
	if method == "" {
		method = http.MethodPost
	}
	logURL := func() string { // only computed for an error: it parses the URL
		if req.LogURL != "" {
			return req.LogURL
		}
		return Redact(req.URL)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, logURL(), err)
	}
	if err := c.checkURL(req.URL); err != nil {
		return nil, delivery.Permanent(fmt.Errorf("build %s request to %s: %w", method, logURL(), err))
	}
	hr := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(hr)
	defer fasthttp.ReleaseResponse(resp)
	hr.Header.DisableNormalizing() // send custom header names exactly as configured
	hr.SetRequestURI(req.URL)
	hr.URI().DisablePathNormalizing = true // webhook URLs are opaque; never rewrite them
	hr.Header.SetMethod(method)
	hr.Header.SetUserAgent(UserAgent)
	if req.ContentType != "" {
		hr.Header.SetContentType(req.ContentType)
	}
	for k, v := range c.headers {
		hr.Header.Set(k, v)
	}
	for k, v := range req.Headers {
		hr.Header.Set(k, v)
	}
	hr.SetBodyRaw(req.Body)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultTimeout)
	}
	if err := c.do(ctx, c.hostFor(hr), hr, resp, deadline); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, logURL(), err)
	}
	status := resp.StatusCode()
	if status >= 200 && status < 300 || slices.Contains(req.AcceptStatus, status) {
		if !keep {
			return nil, nil
		}
		return &Response{Status: status, Header: netHeader(&resp.Header), Body: append([]byte(nil), resp.Body()...)}, nil
	}
	snippet := resp.Body()
	if len(snippet) > maxErrorBody {
		snippet = snippet[:maxErrorBody]
	}
	var err error
	if slices.Contains(req.TransientStatus, status) {
		err = statusText(method, logURL(), status, snippet)
	} else {
		err = StatusError(method, logURL(), status, netHeader(&resp.Header), snippet)
	}
	if _, hinted := delivery.RetryAfterHint(err); !hinted && req.RetryAfter != nil &&
		(status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
		if d, ok := req.RetryAfter(resp.Body()); ok {
			err = delivery.RetryAfter(err, d)
		}
	}
	return nil, err
}

// defaultTimeout bounds a call whose context has no deadline (the engine always sets one).
const defaultTimeout = 30 * time.Second

// netHeader copies a fasthttp response header into an http.Header.
func netHeader(h *fasthttp.ResponseHeader) http.Header {
	out := make(http.Header, h.Len())
	for k, v := range h.All() {
		out.Add(string(k), string(v))
	}
	return out
}

// StatusError classifies a non-2xx answer for outputs that use their own client (SDKs).
// logURL must already be safe to print.
func StatusError(method, logURL string, status int, header http.Header, body []byte) error {
	err := statusText(method, logURL, status, body)
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		if d, ok := ParseRetryAfter(header.Get("Retry-After"), time.Now()); ok {
			return delivery.RetryAfter(err, d)
		}
		return err
	case status == http.StatusRequestTimeout || status >= 500:
		return err
	default:
		return delivery.Permanent(err)
	}
}

// statusText is the error of a non-2xx answer, before it is classified.
func statusText(method, logURL string, status int, body []byte) error {
	return fmt.Errorf("%s %s: status %d: %s", method, logURL, status, strings.TrimSpace(string(body)))
}

// ParseRetryAfter reads a Retry-After header in seconds or as an HTTP date.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// BasicAuth is the Authorization header value of HTTP basic authentication (RFC 7617).
func BasicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// Redact removes credentials from a URL before it is logged or put in an error.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	q := u.Query()
	for k := range q {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "key") || strings.Contains(lk, "token") || strings.Contains(lk, "secret") || strings.Contains(lk, "sig") || strings.Contains(lk, "password") {
			q.Set(k, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// hostFor returns the connection pool of the request's scheme and host.
func (c *Client) hostFor(r *fasthttp.Request) *fasthttp.HostClient {
	isTLS := bytes.Equal(r.URI().Scheme(), []byte("https"))
	hosts := c.hosts
	if isTLS {
		hosts = c.tlsHosts
	}
	c.mu.RLock()
	hc, ok := hosts[string(r.URI().Host())] // no allocation for the lookup
	c.mu.RUnlock()
	if ok {
		return hc
	}
	host := string(r.URI().Host())
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := hosts[host]; ok {
		return hc
	}
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		if isTLS {
			addr = net.JoinHostPort(host, "443")
		} else {
			addr = net.JoinHostPort(host, "80")
		}
	}
	hc = &fasthttp.HostClient{
		Addr: addr, IsTLS: isTLS, TLSConfig: c.tlsCfg, Name: UserAgent,
		// One connection per concurrent request, plus room for the ones being closed.
		MaxConns:            c.maxConns * 2,
		MaxConnWaitTimeout:  dialTimeout,
		MaxIdleConnDuration: idleTimeout,
		// The most recently used connection first: a light stream keeps reusing a few warm
		// connections and lets the others idle out, rather than cycling through all of them
		// until the receiver closes each one as idle just before it is reused.
		ConnPoolStrategy:              fasthttp.LIFO,
		MaxResponseBodySize:           maxResponseBody,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		Dial:                          c.dial,
	}
	if c.dial == nil {
		hc.DialTimeout = func(addr string, timeout time.Duration) (net.Conn, error) {
			return fasthttp.DialTimeout(addr, min(timeout, dialTimeout))
		}
	}
	hosts[host] = hc
	return hc
}

// errAborted marks an exchange cut short because its context ended.
var errAborted = errors.New("request aborted")

// do sends req on a pooled connection and reads the answer into resp before deadline, or
// until ctx ends, which aborts the exchange by expiring the connection's deadlines. A
// connection that failed, was aborted or whose answer asked for it is closed, never reused,
// so a hung receiver's connections are dropped and the next attempt opens a fresh one. When
// a reused keep-alive connection turns out to have been closed by the receiver before it
// answered a single byte (it closed the idle connection as the request went out, or it
// restarted), the idle connections are dropped and the request is sent once more on a new
// connection, as net/http does.
func (c *Client) do(ctx context.Context, hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	for attempt := 0; ; attempt++ {
		reused, err := c.exchange(ctx, hc, req, resp, deadline)
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("%w (%v)", cerr, err)
		}
		if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
			return context.DeadlineExceeded
		}
		if !reused || attempt > 0 || !closedBeforeAnswer(err) {
			return err
		}
		// The receiver closed a kept-alive connection (idle timeout, restart): the other idle
		// ones are likely closed as well, so the request goes out on a fresh connection.
		hc.CloseIdleConnections()
		resp.Reset()
	}
}

// closedBeforeAnswer reports whether err says the receiver closed the connection without
// answering: what a request written on an idle connection the receiver was closing gets.
func closedBeforeAnswer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// exchange is one request and response on one connection. reused tells whether the
// connection had carried an earlier request.
func (c *Client) exchange(ctx context.Context, hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) (reused bool, err error) {
	cc, err := hc.AcquireConn(time.Until(deadline), false)
	if err != nil {
		return false, err
	}
	reused = !cc.LastUseTime().IsZero()
	conn := cc.Conn()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	err = c.writeRead(hc, conn, req, resp, deadline)
	if !stop() {
		// ctx ended during the exchange: the connection's deadlines are spent.
		hc.CloseConn(cc)
		if err == nil {
			return reused, nil // the whole answer was read in time
		}
		return reused, errAborted
	}
	if err != nil || resp.ConnectionClose() {
		hc.CloseConn(cc)
		return reused, err
	}
	hc.ReleaseConn(cc)
	return reused, nil
}

// writeRead writes req (headers and body leave in one write when they fit the 4 KiB
// buffer) and reads the response.
func (c *Client) writeRead(hc *fasthttp.HostClient, conn net.Conn, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	bw := hc.AcquireWriter(conn)
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		return err
	}
	br := hc.AcquireReader(conn)
	err = resp.ReadLimitBody(br, hc.MaxResponseBodySize)
	hc.ReleaseReader(br)
	if err == io.EOF {
		err = fasthttp.ErrConnectionClosed
	}
	return err
}
