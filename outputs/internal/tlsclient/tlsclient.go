// Package tlsclient builds the client TLS configuration of outputs that do not speak HTTP
// (NATS, SMTP) from the same settings httpout uses: checkcert, a custom CA and the shared
// mutual TLS client certificate, so every output honours them alike.
package tlsclient

import (
	"crypto/tls"

	"github.com/saker-dev/saker/engine/httpout"
)

// Config returns httpout's client TLS policy for a connection to serverName.
func Config(serverName string, checkCert, mutualTLS bool, files httpout.TLSFiles) (*tls.Config, error) {
	cfg, err := httpout.ClientTLS(checkCert, mutualTLS, files)
	if err != nil {
		return nil, err
	}
	cfg.ServerName = serverName
	return cfg, nil
}
