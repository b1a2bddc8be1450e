package testpeers

import (
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Silent starts a TCP server that accepts connections and never answers (a hung broker),
// for tests proving a send ends with its context. It returns host:port; everything is
// closed when t ends.
func Silent(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

// Proxy forwards TCP connections from its own port to a server, and can cut them all at
// once or hold the server's answers back: a broker dropping its clients, a broker down and
// back, a broker that stops acknowledging, for a shared server (RabbitMQ) a test must not
// restart.
type Proxy struct {
	Addr    string // host:port clients connect to
	target  string
	mu      sync.Mutex
	l       net.Listener
	conns   map[net.Conn]bool
	count   int
	release chan struct{} // closed unless the server's answers are held back
}

// NewProxy returns a proxy to target listening on a free port, started unless down is true
// (then clients are refused until Up). It is closed when t ends.
func NewProxy(t testing.TB, target string, down bool) *Proxy {
	t.Helper()
	p := &Proxy{Addr: "127.0.0.1:" + strconv.Itoa(FreePort(t)), target: target, conns: map[net.Conn]bool{},
		release: make(chan struct{})}
	close(p.release)
	if !down {
		p.Up(t)
	}
	t.Cleanup(p.Down)
	return p
}

// Up starts listening and forwarding.
func (p *Proxy) Up(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp", p.Addr)
	if err != nil {
		t.Fatalf("proxy listen %s: %v", p.Addr, err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.count++
			p.mu.Unlock()
			go p.forward(c)
		}
	}()
}

func (p *Proxy) forward(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { p.answer(c, s); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = s.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// answer copies the server's bytes to the client, waiting while they are held back.
func (p *Proxy) answer(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			release := p.release
			p.mu.Unlock()
			<-release
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Hold holds the server's answers back (the connections stay open) until Release.
func (p *Proxy) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.release:
		p.release = make(chan struct{})
	default:
	}
}

// Release lets the server's answers through again.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

// Accepted is the number of client connections accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// Cut closes every forwarded connection; new ones are still accepted.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

// Down stops listening and cuts every connection.
func (p *Proxy) Down() {
	p.Release()
	p.mu.Lock()
	if p.l != nil {
		_ = p.l.Close()
		p.l = nil
	}
	p.mu.Unlock()
	p.Cut()
}
