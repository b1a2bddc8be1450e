package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/tlsclient"
)

// errNoStartTLS is returned when smtp.tls is on and the server does not offer STARTTLS:
// saker never falls back to sending credentials and alerts in clear text.
var errNoStartTLS = errors.New("the server does not offer STARTTLS (set smtp.tls=false to send in plain text, or use port 465 for implicit TLS)")

// idleCheck is how long a pooled connection may sit unused before it is checked with NOOP
// (servers drop idle clients; a dead connection is replaced before the message is sent).
const idleCheck = 10 * time.Second

// dialer opens authenticated SMTP sessions.
type dialer struct {
	addr      string
	tls       bool
	implicit  bool // TLS from the first byte (port 465) rather than STARTTLS
	tlsCfg    *tls.Config
	auth      func() sasl.Client // a fresh client per session: SASL clients hold state
	localName string
	dials     atomic.Int64 // sessions opened, for tests and debugging
}

func newDialer(c *Config, s settings, env outputs.Env) (*dialer, error) {
	host, port := s.host, s.port
	d := &dialer{addr: c.HostPort, tls: c.TLS, implicit: c.TLS && port == 465, localName: localName()}
	if c.TLS {
		cfg, err := tlsclient.Config(host, c.CheckCert, false, env.TLS)
		if err != nil {
			return nil, err
		}
		d.tlsCfg = cfg
	}
	cfg := *c
	d.auth = func() sasl.Client { return saslClient(&cfg, host, port) }
	return d, nil
}

// localName is the name saker introduces itself with (EHLO): the host name when it looks
// like a domain name, else "localhost".
func localName() string {
	if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") && !strings.ContainsAny(h, " \r\n") {
		return h
	}
	return "localhost"
}

// dial connects, secures and authenticates a session within ctx's deadline.
func (d *dialer) dial(ctx context.Context) (*conn, error) {
	d.dials.Add(1)
	nd := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	raw, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, err
	}
	stop := watch(ctx, raw)
	c, err := d.session(ctx, raw)
	if stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		if c != nil {
			_ = c.Close()
		}
		_ = raw.Close()
		return nil, err
	}
	return &conn{c: c, raw: raw, lastUsed: time.Now()}, nil
}

func (d *dialer) session(ctx context.Context, raw net.Conn) (*gosmtp.Client, error) {
	var c *gosmtp.Client
	switch {
	case d.implicit:
		tc := tls.Client(raw, d.tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		c = gosmtp.NewClient(tc)
	case d.tls:
		var err error
		c, err = gosmtp.NewClientStartTLS(raw, d.tlsCfg)
		if err != nil {
			if strings.Contains(err.Error(), "support STARTTLS") {
				return nil, errNoStartTLS
			}
			return nil, err
		}
	default:
		c = gosmtp.NewClient(raw)
	}
	if err := c.Hello(d.localName); err != nil {
		return c, err
	}
	if a := d.auth(); a != nil {
		if err := c.Auth(a); err != nil {
			return c, err
		}
	}
	return c, nil
}

// conn is one SMTP session.
type conn struct {
	c        *gosmtp.Client
	raw      net.Conn
	lastUsed time.Time
}

// send runs one mail transaction.
func (cn *conn) send(ctx context.Context, from string, to []string, msg []byte) error {
	stop := watch(ctx, cn.raw)
	err := cn.c.SendMail(from, to, bytes.NewReader(msg))
	if stop() && err != nil {
		err = errors.Join(ctx.Err(), err)
	}
	return err
}

// healthy checks an idle session with NOOP.
func (cn *conn) healthy(ctx context.Context) bool {
	stop := watch(ctx, cn.raw)
	err := cn.c.Noop()
	return !stop() && err == nil
}

// reset aborts a failed transaction (RSET) so the session can be reused; it reports whether
// the session is still usable.
func (cn *conn) reset() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop := watch(ctx, cn.raw)
	err := cn.c.Reset()
	return !stop() && err == nil
}

func (cn *conn) quit() {
	_ = cn.raw.SetDeadline(time.Now().Add(2 * time.Second))
	if err := cn.c.Quit(); err != nil {
		_ = cn.c.Close()
	}
}

// watch applies ctx's deadline and cancellation to the connection until the returned stop
// is called; stop reports whether ctx ended during the operation (the session is then in an
// unknown state and must be discarded).
func watch(ctx context.Context, c net.Conn) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	var mu sync.Mutex
	fired := false
	cancelAfter := context.AfterFunc(ctx, func() {
		mu.Lock()
		fired = true
		mu.Unlock()
		_ = c.SetDeadline(time.Now())
	})
	return func() bool {
		cancelAfter()
		mu.Lock()
		defer mu.Unlock()
		if !fired {
			_ = c.SetDeadline(time.Time{})
		}
		return fired
	}
}

// pool keeps up to max idle sessions for reuse; the engine's concurrency bounds how many are
// in use at once.
type pool struct {
	mu     sync.Mutex
	idle   []*conn
	max    int
	closed bool
}

func newPool(max int) *pool { return &pool{max: max} }

// get returns a healthy idle session or dials a new one.
func (p *pool) get(ctx context.Context, d *dialer) (*conn, error) {
	for {
		p.mu.Lock()
		var cn *conn
		if n := len(p.idle); n > 0 {
			cn = p.idle[n-1]
			p.idle = p.idle[:n-1]
		}
		p.mu.Unlock()
		if cn == nil {
			return d.dial(ctx)
		}
		if time.Since(cn.lastUsed) < idleCheck || cn.healthy(ctx) {
			return cn, nil
		}
		_ = cn.c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// put returns a session after a successful transaction.
func (p *pool) put(cn *conn) {
	cn.lastUsed = time.Now()
	p.mu.Lock()
	if !p.closed && len(p.idle) < p.max {
		p.idle = append(p.idle, cn)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	cn.quit()
}

// discardOrReset handles a session whose transaction failed: when the server answered (the
// protocol is in step) it is reset and kept, otherwise closed.
func (p *pool) discardOrReset(cn *conn, err error) {
	var se *gosmtp.SMTPError
	timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
	if !timedOut && errors.As(err, &se) && se.Code != 421 && cn.reset() {
		p.put(cn)
		return
	}
	_ = cn.c.Close()
}

// close quits the idle sessions; sessions in use are quit when they come back.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, cn := range idle {
		cn.quit()
	}
}
