package tlsclient

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/httpout"
)

func TestConfig(t *testing.T) {
	cfg, err := Config("mail.example.com", false, false, httpout.TLSFiles{})
	if err != nil || !cfg.InsecureSkipVerify || cfg.ServerName != "mail.example.com" {
		t.Fatalf("checkcert=false: %+v %v", cfg, err)
	}
	missing := filepath.Join(t.TempDir(), "ca.crt")
	if _, err := Config("h", true, false, httpout.TLSFiles{CACertFile: missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing CA file: %v, want an error naming it", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.crt")
	if err := os.WriteFile(empty, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Config("h", true, false, httpout.TLSFiles{CACertFile: empty}); err == nil {
		t.Error("a CA file without PEM must fail")
	}
	if _, err := Config("h", true, true, httpout.TLSFiles{CertFile: missing, KeyFile: missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing client certificate: %v", err)
	}
}
