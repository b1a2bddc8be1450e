package httpin

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
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
		rt := s.root
		if !isRoot {
			rt = s.routeFor(string(path))
		}
		announced := int64(ctx.Request.Header.ContentLength()) // -1: chunked, -2: no body
		if announced == -2 {
			announced = 0
		}
		if announced == 0 {
			if v := ctx.Request.Header.Peek(oversizeHeader); v != nil {
				announced, _ = strconv.ParseInt(string(v), 10, 64)
				announced = max(announced, rt.MaxBody+1)
			}
		}
		if announced > rt.MaxBody {
			ctx.SetConnectionClose() // the body stays unread
			writeFastAnswer(ctx, rt.tooLarge(announced))
			return
		}
		var body []byte
		if n := reservation(announced, rt.MaxBody); n > smallBody {
			if !s.budget.acquire(n) {
				ctx.SetConnectionClose()
				writeFastAnswer(ctx, rt.busy(s.budget))
				return
			}
			defer s.budget.release(n)
			b, err := readBody(ctx.RequestBodyStream(), announced, rt.MaxBody)
			if err != nil {
				ctx.SetConnectionClose()
				if errors.Is(err, errBodyTooLarge) {
					writeFastAnswer(ctx, rt.tooLarge(-1))
				} else {
					writeFastAnswer(ctx, rt.reject(http.StatusBadRequest, err.Error()))
				}
				return
			}
			body = b
			ctx.Request.SetBodyRaw(b) // what the net/http handlers read
		} else {
			body = ctx.PostBody() // at most 8 KiB, read before the handler ran
		}
		if !isRoot || !ctx.IsPost() {
			slow(ctx)
			return
		}
		writeFastAnswer(ctx, s.acceptFrom(ctx, bytes.NewReader(body), ""))
	}
}

// oversizeHeader carries, from headerReceived to the handler, the length a request
// announced beyond its path's limit.
const oversizeHeader = "X-Saker-Oversize-Length"

// headerReceived runs once the headers are read, before fasthttp reads any of the body. A
// body announced larger than its path's limit is not read at all: the request goes to the
// handler as if empty, marked with oversizeHeader, and gets 413 with the connection
// closed. (Otherwise fasthttp would first wait for up to 8 KiB of the body.)
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	announced := h.ContentLength()
	if announced <= smallBody {
		return fasthttp.RequestConfig{}
	}
	path := h.RequestURI()
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	rt := s.root
	if !(len(path) == 1 && path[0] == '/') {
		rt = s.routeFor(string(path))
	}
	if int64(announced) > rt.MaxBody {
		h.Set(oversizeHeader, strconv.Itoa(announced))
		h.SetContentLength(0)
	}
	return fasthttp.RequestConfig{}
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
	ctx.SetBody(a.body)
}

// fastLogger routes fasthttp's messages (broken connections, mostly) to debug logs.
type fastLogger struct{ log *slog.Logger }

func (l fastLogger) Printf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
