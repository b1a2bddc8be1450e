// Package tlsconf is saker's one TLS policy, for every client (the outputs, the external
// NATS server) and every listener: TLS 1.2 at least; a client trusts the system roots plus
// the configured CA (what users expect from a "CA file" setting: a private CA added, public
// servers still trusted) and presents a certificate when one is configured; a listener
// serves its certificate and, with a client CA, requires client certificates signed by it.
// Errors name the configuration key and the file at fault.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// Files are the PEM files of one side of a TLS connection.
type Files struct {
	CertFile   string // this side's certificate (a client's, for mutual TLS)
	KeyFile    string // its key
	CACertFile string // a client: the CA of the server, added to the system roots; a listener: the CA client certificates must be signed by
	// CertKey and CAKey name the configuration keys CertFile and CACertFile came from
	// (KeyFile's is CertKey's sibling ending in keyfile), so errors say what to fix; empty:
	// the errors say "certificate" and "CA certificate".
	CertKey, CAKey string
}

// Client returns the client side: verify=false skips the server's verification (only ever a
// user's explicit choice, such as checkcert: false); CertFile, when set, is presented.
func Client(verify bool, f Files) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !verify} //nolint:gosec // the user's explicit choice
	if f.CACertFile != "" {
		pool, _ := x509.SystemCertPool()
		if pool == nil {
			pool = x509.NewCertPool()
		}
		if err := f.addCA(pool); err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if f.CertFile != "" || f.KeyFile != "" {
		cert, err := f.keyPair()
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Server returns a listener's side: it serves CertFile and, when CACertFile is set, requires
// client certificates signed by that CA (and only by it: no system roots).
func Server(f Files) (*tls.Config, error) {
	cert, err := f.keyPair()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f.CACertFile != "" {
		pool := x509.NewCertPool()
		if err := f.addCA(pool); err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func (f Files) addCA(pool *x509.CertPool) error {
	key := f.CAKey
	if key == "" {
		key = "CA certificate"
	}
	pem, err := os.ReadFile(f.CACertFile)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s %s holds no PEM certificate", key, f.CACertFile)
	}
	return nil
}

func (f Files) keyPair() (tls.Certificate, error) {
	certKey, keyKey := "certificate", "key"
	if f.CertKey != "" {
		certKey, keyKey = f.CertKey, strings.TrimSuffix(f.CertKey, "certfile")+"keyfile"
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s %s / %s %s: %w", certKey, f.CertFile, keyKey, f.KeyFile, err)
	}
	return cert, nil
}
