package httpin

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// TLSListener serves TLS with cfg on ln, answering a client that speaks plain HTTP to it
// with a complete 400 response that says why, instead of the bare reset it would otherwise
// get: the client reads the answer (it has a Content-Length) and the connection closes.
func TLSListener(ln net.Listener, cfg *tls.Config) net.Listener {
	return tls.NewListener(plainRefuser{ln}, cfg)
}

type plainRefuser struct{ net.Listener }

func (l plainRefuser) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c}, nil
}

// errPlainHTTP ends the TLS handshake of a connection that spoke plain HTTP.
var errPlainHTTP = errors.New("client sent plain HTTP to a TLS port")

// plainHTTPAnswer is the 400 a plain-HTTP client gets on a TLS port.
var plainHTTPAnswer = func() []byte {
	body := `{"error":"this port serves HTTPS only (TLS, with a client certificate when mutual TLS is on)"}` + "\n"
	return []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// sniffConn looks at the first byte a client sends: a TLS handshake record starts with 0x16.
type sniffConn struct {
	net.Conn
	once    sync.Once
	refused bool
}

func (c *sniffConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return c.Conn.Read(p)
	}
	var n int
	var err error
	first := false
	c.once.Do(func() {
		first = true
		n, err = c.Conn.Read(p)
		if n > 0 && p[0] != 0x16 {
			c.refused = true
			c.refuse()
		}
	})
	if c.refused {
		return 0, fmt.Errorf("%w (from %s)", errPlainHTTP, c.RemoteAddr())
	}
	if first {
		return n, err
	}
	return c.Conn.Read(p)
}

// refuse drains what the client sent (so closing does not reset the connection before it
// read the answer), answers 400 and closes.
func (c *sniffConn) refuse() {
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	_, _ = io.CopyN(io.Discard, c.Conn, 1<<20)
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_, _ = c.Conn.Write(plainHTTPAnswer)
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.Conn.Close()
}
