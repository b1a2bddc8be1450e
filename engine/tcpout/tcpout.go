// Package tcpout is the one stream-connection policy of the outputs that write lines to a
// TCP (or TLS) socket: logstash's tcp input, syslog over TCP. A connection is dialled on
// first use and kept; each write has the caller's deadline; any error closes it, and the
// next write dials again, so a receiver that restarted is reached on a fresh connection.
package tcpout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// dialTimeout bounds connecting when the caller's context has no earlier deadline.
const dialTimeout = 10 * time.Second

// Client writes to one address. It is safe for concurrent use: writes are serialised, so
// lines never interleave.
type Client struct {
	addr string
	tls  *tls.Config // nil: plain TCP

	mu   sync.Mutex
	conn net.Conn
}

// New returns a client for addr (host:port); tlsCfg nil means plain TCP.
func New(addr string, tlsCfg *tls.Config) *Client { return &Client{addr: addr, tls: tlsCfg} }

// Write sends b whole, before ctx's deadline. A connection the receiver closed while it was
// idle is noticed before writing (plain TCP) and replaced, so the write is not lost in a
// dead socket's buffer; a failed write closes the connection and returns the error (the
// delivery engine retries). TCP has no acknowledgement: bytes written just before the
// receiver dies can still be lost, which the output's documentation says.
func (c *Client) Write(ctx context.Context, b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && c.tls == nil && !alive(c.conn) {
		c.closeLocked()
	}
	if c.conn == nil {
		conn, err := c.dial(ctx)
		if err != nil {
			return err
		}
		c.conn = conn
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(dialTimeout)
	}
	if err := c.conn.SetWriteDeadline(deadline); err != nil {
		c.closeLocked()
		return fmt.Errorf("write to %s: %w", c.addr, err)
	}
	conn := c.conn // the callback may run after an error has closed and cleared c.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
	_, err := conn.Write(b)
	stop()
	if err != nil {
		c.closeLocked()
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("write to %s: %w", c.addr, cerr)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("write to %s: %w", c.addr, context.DeadlineExceeded)
		}
		return fmt.Errorf("write to %s: %w", c.addr, err)
	}
	return nil
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var (
		conn net.Conn
		err  error
	)
	if c.tls != nil {
		d := &tls.Dialer{Config: c.tls}
		conn, err = d.DialContext(dctx, "tcp", c.addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(dctx, "tcp", c.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.addr, err)
	}
	return conn, nil
}

func (c *Client) closeLocked() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// Close closes the connection; a later Write dials again.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
	return nil
}
