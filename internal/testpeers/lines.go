package testpeers

import (
	"bufio"
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"testing"
)

// LineServer is a TCP (or TLS) receiver of newline-terminated lines, the way Logstash's tcp
// input and rsyslog's imtcp read them. It can be stopped (closing every connection, as a
// restarting receiver does) and started again on the same port.
type LineServer struct {
	Port int
	tls  *tls.Config

	mu    sync.Mutex
	l     net.Listener
	conns []net.Conn
	lines []string
}

// StartLineServer listens on a free port (TLS when cfg is not nil) and stops at the end of
// the test.
func StartLineServer(t testing.TB, cfg *tls.Config) *LineServer {
	t.Helper()
	s := &LineServer{Port: FreePort(t), tls: cfg}
	s.Start(t)
	t.Cleanup(s.Stop)
	return s
}

// Addr is host:port.
func (s *LineServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// Start listens again on the server's port.
func (s *LineServer) Start(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if s.tls != nil {
		l = tls.NewListener(l, s.tls)
	}
	s.mu.Lock()
	s.l = l
	s.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go s.read(c)
		}
	}()
}

func (s *LineServer) read(c net.Conn) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		s.mu.Lock()
		s.lines = append(s.lines, sc.Text())
		s.mu.Unlock()
	}
}

// Stop closes the listener and every connection.
func (s *LineServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l != nil {
		_ = s.l.Close()
		s.l = nil
	}
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
}

// Lines returns the lines received so far.
func (s *LineServer) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}
