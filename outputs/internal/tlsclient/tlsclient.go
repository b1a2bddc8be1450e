// Package tlsclient builds the client TLS configuration of outputs that do not speak HTTP
// (NATS, SMTP) from the same settings httpout uses: checkcert, a custom CA and the shared
// mutual TLS client certificate, so every output honours them alike.
package tlsclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/saker-dev/saker/engine/httpout"
)

// Config returns a TLS client configuration for serverName. checkCert=false skips server
// verification (the user's explicit choice); mutualTLS presents files.CertFile/KeyFile; a
// files.CACertFile is added to the system roots. Errors name the file that failed.
func Config(serverName string, checkCert, mutualTLS bool, files httpout.TLSFiles) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: !checkCert} //nolint:gosec // user's explicit checkcert=false
	if files.CACertFile != "" {
		pem, err := os.ReadFile(files.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate %s: %w", files.CACertFile, err)
		}
		pool, _ := x509.SystemCertPool()
		if pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate %s holds no PEM certificate", files.CACertFile)
		}
		cfg.RootCAs = pool
	}
	if mutualTLS {
		cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s / %s: %w", files.CertFile, files.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
