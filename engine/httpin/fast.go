package httpin

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// FastHandler serves the listener with fasthttp: POST / — every Falco event — natively, and
// every other path through the net/http handlers (ServeHTTP). net/http's per-request
// background reader and allocations were the largest cost of ingest after the system calls
// themselves; the answers are the same either way.
func (s *Server) FastHandler() fasthttp.RequestHandler {
	slow := fasthttpadaptor.NewFastHTTPHandler(s)
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsPost() || !bytes.Equal(ctx.Path(), rootPath) {
			slow(ctx)
			return
		}
		body := ctx.PostBody()
		var a answer
		if int64(len(body)) > s.opts.MaxBodySize {
			a = s.reject(http.StatusRequestEntityTooLarge, "body larger than maxbodysize ("+strconv.FormatInt(s.opts.MaxBodySize, 10)+" bytes)")
		} else {
			a = s.acceptFrom(ctx, bytes.NewReader(body), "")
		}
		writeFastAnswer(ctx, a)
	}
}

var rootPath = []byte("/")

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
