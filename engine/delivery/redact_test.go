package delivery

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestRedactorRemovesSecretsAndTheirParts(t *testing.T) {
	secretURL := "https://user:pa55word@hooks.example/services/T000/B000/XXXXSECRETXXXX?token=qtok3n&x=1"
	parts := append(SecretURLParts(secretURL), SecretHeaderParts("Bearer sekrit-header-42")...)
	parts = append(parts, "abc") // too short to be redacted
	r := NewRedactor(parts...)
	for _, tc := range []struct{ in, want string }{
		{"POST " + secretURL + ": 404", "POST https://user:REDACTED@hooks.example/REDACTED?REDACTED: 404"},
		{"Cannot POST /services/T000/B000/XXXXSECRETXXXX", "Cannot POST /REDACTED"},
		{"unknown hook XXXXSECRETXXXX", "unknown hook REDACTED"},
		{"bad query token=qtok3n&x=1", "bad query REDACTED"},
		{"auth failed for pa55word", "auth failed for REDACTED"},
		{"header Bearer sekrit-header-42 refused; sekrit-header-42 again", "header REDACTED refused; REDACTED again"},
		{"escaped %2Fservices%2FT000%2FB000%2FXXXXSECRETXXXX", "escaped REDACTED"},
		{"abc stays", "abc stays"},
	} {
		if got := r.Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := (*Redactor)(nil).Redact("x"); got != "x" {
		t.Errorf("nil redactor: %q", got)
	}
}

func TestRedactorHandler(t *testing.T) {
	var buf bytes.Buffer
	r := NewRedactor("TOPSECRET42")
	log := slog.New(r.Handler(slog.NewTextHandler(&buf, nil))).With("url", "https://x/TOPSECRET42")
	log.Warn("failed TOPSECRET42", "err", errors.New("echo TOPSECRET42"), slog.Group("g", "v", "TOPSECRET42"))
	if out := buf.String(); strings.Contains(out, "TOPSECRET42") || strings.Count(out, Redacted) != 4 {
		t.Errorf("log line: %s", out)
	}
}
