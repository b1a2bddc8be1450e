package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/testpeers"
)

// handshake runs a TLS handshake between client and server configurations on a loopback
// connection and returns the certificate the server saw ("" when its handshake failed, "-"
// when the client presented none) and the client's error.
func handshake(t *testing.T, client, server *tls.Config) (string, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			seen <- ""
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		s := c.(*tls.Conn)
		if err := s.Handshake(); err != nil {
			seen <- ""
			return
		}
		if pc := s.ConnectionState().PeerCertificates; len(pc) > 0 {
			seen <- pc[0].Subject.CommonName
			return
		}
		seen <- "-"
	}()
	client.ServerName = "localhost"
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), client)
	if err == nil {
		// TLS 1.3: the server checks the client's certificate after the client's side is done.
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(make([]byte, 1))
		c.Close()
	}
	return <-seen, err
}

// A listener with a client CA accepts a client presenting a certificate signed by it, and
// the client verifies the server against the configured CA.
func TestMutualTLS(t *testing.T) {
	p := testpeers.NewPKI(t)
	server, err := Server(Files{CertFile: p.ServerCertFile, KeyFile: p.ServerKeyFile, CACertFile: p.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	client, err := Client(true, Files{CertFile: p.ClientCertFile, KeyFile: p.ClientKeyFile, CACertFile: p.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	if cn, err := handshake(t, client, server); err != nil || cn != "client" {
		t.Fatalf("mutual TLS: %v, server saw %q", err, cn)
	}
	// Without its certificate the client is refused.
	bare, _ := Client(true, Files{CACertFile: p.CAFile})
	if cn, _ := handshake(t, bare, server); cn != "" {
		t.Errorf("a listener requiring client certificates accepted a client without one (%q)", cn)
	}
	// Without the CA the client does not trust the server.
	if _, err := handshake(t, &tls.Config{MinVersion: tls.VersionTLS12}, server); err == nil {
		t.Error("a client without the CA trusted the test server")
	}
}

// The configured CA is added to the system roots, not used instead of them.
func TestClientKeepsTheSystemRoots(t *testing.T) {
	p := testpeers.NewPKI(t)
	cfg, err := Client(true, Files{CACertFile: p.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	sys, err := x509.SystemCertPool()
	if err != nil || sys.Equal(x509.NewCertPool()) {
		t.Skipf("no system roots on this machine (%v)", err)
	}
	if cfg.RootCAs.Equal(p.Pool) {
		t.Error("the root pool holds only the configured CA, not the system roots with it")
	}
}

// Errors name the configuration key and the file.
func TestErrorsNameTheKeyAndFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		err  error
		want []string
	}{
		{second(Client(true, Files{CACertFile: missing, CAKey: "bus.jetstream.tls.cacertfile"})), []string{"bus.jetstream.tls.cacertfile", missing}},
		{second(Client(true, Files{CACertFile: junk, CAKey: "tlsclient.cacertfile"})), []string{"tlsclient.cacertfile " + junk, "holds no PEM certificate"}},
		{second(Client(true, Files{CertFile: missing, KeyFile: junk, CertKey: "bus.jetstream.tls.certfile"})), []string{"bus.jetstream.tls.certfile " + missing, "bus.jetstream.tls.keyfile " + junk}},
		{second(Server(Files{CertFile: missing, KeyFile: missing, CertKey: "tlsserver.certfile"})), []string{"tlsserver.certfile " + missing, "tlsserver.keyfile"}},
		{second(Server(Files{CertFile: missing, KeyFile: missing})), []string{"certificate " + missing}},
	} {
		if c.err == nil {
			t.Errorf("no error, want one naming %q", c.want)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(c.err.Error(), w) {
				t.Errorf("error %q does not name %q", c.err, w)
			}
		}
	}
}

func second(_ *tls.Config, err error) error { return err }
