package httpin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/saker-dev/saker/engine/event"
)

// ReadTimeout bounds reading one request, headers and body. A minute lets a client send the
// largest audit batch (12 MiB by default) at 200 KiB/s, while a client that trickles its
// request (slowloris) holds a connection, and its share of the in-flight body budget, for at
// most that long.
const ReadTimeout = time.Minute

// NewFastServer returns the fasthttp server of the main listener. It streams request
// bodies: fasthttp reads at most 8 KiB of a body before FastHandler runs, and FastHandler
// reads the rest only within the path's limit and the in-flight budget.
func (s *Server) NewFastServer(log *slog.Logger) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:           s.FastHandler(),
		HeaderReceived:    s.headerReceived,
		ErrorHandler:      s.fastError,
		Name:              "saker",
		StreamRequestBody: true,
		ReadBufferSize:    16 << 10, // room for large headers (long bearer tokens); 4 KiB by default
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       2 * time.Minute,
		Logger:            fastLogger{log},
		CloseOnShutdown:   true,
	}
}

// FastHandler serves the listener with fasthttp: POST / — every Falco event — natively, and
// every other path through the net/http handlers. net/http's per-request background reader
// and allocations were the largest cost of ingest after the system calls themselves; the
// answers are the same either way. Before any handler runs, the body is checked against
// its path's limit (413 from the headers when its length is announced) and, when larger
// than 8 KiB, against the in-flight budget (503 with Retry-After).
func (s *Server) FastHandler() fasthttp.RequestHandler {
	slow := fasthttpadaptor.NewFastHTTPHandler(s.mux)
	return func(ctx *fasthttp.RequestCtx) {
		path := ctx.Path()
		isRoot := len(path) == 1 && path[0] == '/'
		rt := s.fastRoute(path)
		announced := int64(ctx.Request.Header.ContentLength()) // -1: chunked, -2: no body
		if announced == -2 {
			announced = 0
		}
		if announced == 0 { // headerReceived empties the requests it marks
			// Credentials first: an unauthenticated client gets 401 before any of a large
			// body is read (and never touches the in-flight budget).
			if v := ctx.Request.Header.Peek(unauthorizedHeader); v != nil {
				announced, _ = strconv.ParseInt(string(v), 10, 64)
				refuseUnread(ctx, s.unauthorized(rt), announced)
				return
			}
			if v := ctx.Request.Header.Peek(oversizeHeader); v != nil {
				announced, _ = strconv.ParseInt(string(v), 10, 64)
				announced = max(announced, rt.MaxBody+1)
			}
		}
		if s.fastRefused(path, ctx.Request.Header.Peek("Authorization")) {
			a := s.unauthorized(rt)
			if announced < 0 || announced > smallBody {
				refuseUnread(ctx, a, announced)
			} else {
				writeFastAnswer(ctx, a)
			}
			return
		}
		if announced > rt.MaxBody {
			refuseUnread(ctx, rt.tooLarge(announced), announced)
			return
		}
		var body []byte
		if announced < 0 || announced > smallBody { // chunked, or not read yet
			if n := reservation(announced, rt.MaxBody); n > smallBody {
				if !s.budget.acquire(n) {
					refuseUnread(ctx, rt.busy(s.budget), announced)
					return
				}
				defer s.budget.release(n)
			}
			b, err := readBody(ctx.RequestBodyStream(), announced, rt.MaxBody)
			if err != nil {
				if errors.Is(err, errBodyTooLarge) {
					refuseUnread(ctx, rt.tooLarge(-1), -1)
				} else {
					ctx.SetConnectionClose()
					writeFastAnswer(ctx, rt.reject(http.StatusBadRequest, err.Error()))
				}
				return
			}
			body = b
			ctx.Request.SetBodyRaw(b) // what the net/http handlers read
		} else {
			body = ctx.PostBody() // at most 8 KiB of announced length, read before the handler ran
		}
		// POST /?output=NAME (a dead-letter replay to one output) is rare: net/http serves it.
		if !isRoot || !ctx.IsPost() || len(ctx.URI().QueryString()) > 0 {
			slow(ctx)
			return
		}
		ev, err := event.DecodeBytes(body)
		writeFastAnswer(ctx, s.acceptDecoded(ctx, ev, err, ""))
	}
}

// fastRoute is routeFor of a raw path, without a conversion or lookup for POST /.
func (s *Server) fastRoute(path []byte) *route {
	if len(path) == 1 && path[0] == '/' {
		return s.root
	}
	return s.routeFor(string(path))
}

// fastRefused reports whether a request for path lacks the credentials it needs, given its
// Authorization header; nothing is converted when no credential is configured.
func (s *Server) fastRefused(path, authz []byte) bool {
	return s.auth.enabled && s.auth.protects(string(path)) && !s.auth.allows(string(authz))
}

// oversizeHeader carries, from headerReceived to the handler, the length a request
// announced beyond its path's limit.
const oversizeHeader = "X-Saker-Oversize-Length"

// unauthorizedHeader marks, from headerReceived to the handler, a request with a large body
// and no valid credentials; its value is the announced length, left unread.
const unauthorizedHeader = "X-Saker-Unauthorized-Length"

// headerReceived runs once the headers are read, before fasthttp reads any of the body. A
// body announced larger than its path's limit is not read at all: the request goes to the
// handler as if empty, marked with oversizeHeader, and gets 413 with the connection
// closed. (Otherwise fasthttp would first wait for up to 8 KiB of the body.)
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	h.Del(oversizeHeader) // only the listener sets these, never a client
	h.Del(unauthorizedHeader)
	announced := h.ContentLength()
	if announced <= smallBody {
		return fasthttp.RequestConfig{}
	}
	// The path as the handler will see it (ctx.Path()): decoded and normalized, so that
	// /./k8s-audit or /%6b8s-audit get /k8s-audit's limit and credentials.
	uri := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(uri)
	if err := uri.Parse(h.Host(), h.RequestURI()); err != nil {
		return fasthttp.RequestConfig{} // the handler answers what it makes of it
	}
	path := uri.Path()
	if s.fastRefused(path, h.Peek("Authorization")) {
		// Refused before any of the body is read, like an oversized one.
		h.Set(unauthorizedHeader, strconv.Itoa(announced))
		h.SetContentLength(0)
		h.Del("Expect")
		return fasthttp.RequestConfig{}
	}
	if int64(announced) > s.fastRoute(path).MaxBody {
		h.Set(oversizeHeader, strconv.Itoa(announced))
		h.SetContentLength(0)
		h.Del("Expect") // answer 413 instead of inviting the body with 100 Continue
	}
	return fasthttp.RequestConfig{}
}

// Lingering close: after refusing a body it did not read, the listener answers at once,
// then reads and discards what the client still sends (at most lingerBytes, for at most
// lingerTime, giving up after lingerIdle of silence) before closing. A client that sends
// its whole body before reading the answer (most do) then gets the 413 or 503 instead of
// a connection reset; memory stays one copy buffer per such connection.
const (
	lingerTime  = 30 * time.Second
	lingerIdle  = 5 * time.Second
	lingerBytes = 64 << 20
)

// refuseUnread answers a with the connection closed, without reading the body (announced
// bytes, -1 when unknown), then drains it.
func refuseUnread(ctx *fasthttp.RequestCtx, a answer, announced int64) {
	raw := rawAnswer(a)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		_ = c.SetWriteDeadline(time.Now().Add(lingerIdle))
		if _, err := c.Write(raw); err != nil {
			return
		}
		linger(c, announced)
	})
}

// rawAnswer is a as an HTTP/1.1 response that closes the connection.
func rawAnswer(a answer) []byte {
	b := make([]byte, 0, 256+len(a.body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(a.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(a.status)...)
	b = append(b, "\r\nServer: saker\r\nDate: "...)
	b = append(b, time.Now().UTC().Format(http.TimeFormat)...)
	b = append(b, "\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n"...)
	if a.challenge != "" {
		b = append(b, "WWW-Authenticate: "...)
		b = append(b, a.challenge...)
		b = append(b, "\r\n"...)
	}
	if a.retryAfter {
		b = append(b, "Retry-After: 1\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(a.body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, a.body...)
}

// linger reads and discards up to announced bytes (lingerBytes when unknown) of what the
// client still sends.
func linger(c net.Conn, announced int64) {
	left := int64(lingerBytes)
	if announced >= 0 {
		left = min(announced, left)
	}
	end := time.Now().Add(lingerTime)
	buf := make([]byte, 32<<10)
	for left > 0 {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		readBy := now.Add(lingerIdle)
		if readBy.After(end) {
			readBy = end
		}
		_ = c.SetReadDeadline(readBy)
		n, err := c.Read(buf[:min(int64(len(buf)), left)])
		left -= int64(n)
		if err != nil {
			return
		}
	}
}

// fastError answers what fasthttp could not parse (headers too large, a read timeout, a
// malformed request) as the handlers answer, in JSON, and counts it as rejected.
func (s *Server) fastError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		writeFastAnswer(ctx, s.reject(http.StatusRequestHeaderFieldsTooLarge, "request headers larger than 16 KiB"))
	case errors.As(err, &netErr) && netErr.Timeout():
		writeFastAnswer(ctx, s.reject(http.StatusRequestTimeout, "request not received within "+ReadTimeout.String()))
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeFastAnswer(ctx, s.root.tooLarge(-1))
	default:
		writeFastAnswer(ctx, s.reject(http.StatusBadRequest, "malformed HTTP request: "+err.Error()))
	}
}

func writeFastAnswer(ctx *fasthttp.RequestCtx, a answer) {
	ctx.SetStatusCode(a.status)
	ctx.SetContentType("application/json")
	if a.status >= 400 {
		ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	}
	if a.retryAfter {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	if a.allow != "" {
		ctx.Response.Header.Set("Allow", a.allow)
	}
	if a.challenge != "" {
		ctx.Response.Header.Set("WWW-Authenticate", a.challenge)
	}
	ctx.SetBody(a.body)
}

// fastLogger routes fasthttp's messages (broken connections, mostly) to debug logs.
type fastLogger struct{ log *slog.Logger }

// streamedBodyWarning starts the message fasthttp logs whenever a handler takes the body of a
// streamed request as a whole. FastHandler does that on every POST / by design (only bodies
// fasthttp has already read, at most 8 KiB), so it says nothing and is not logged.
const streamedBodyWarning = "WARNING: Request.Body() reads the entire stream"

// Printf logs at debug level. The level is checked before formatting: fasthttp calls this on
// the request path, where formatting a message nobody reads cost about 1% of ingest CPU.
func (l fastLogger) Printf(format string, args ...any) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) || strings.HasPrefix(format, streamedBodyWarning) {
		return
	}
	l.log.Debug(fmt.Sprintf(format, args...))
}
