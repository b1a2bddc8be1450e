package httpin

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestFastLoggerDropsTheStreamedBodyWarning(t *testing.T) {
	var buf bytes.Buffer
	l := fastLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Printf(streamedBodyWarning + " into memory. Use Request.BodyStream() instead.")
	if buf.Len() != 0 {
		t.Fatalf("the warning every POST / triggers was logged: %s", buf.String())
	}
	l.Printf("error when serving connection %q<->%q: %v", "127.0.0.1:2801", "127.0.0.1:5000", "reset")
	if !strings.Contains(buf.String(), "error when serving connection") {
		t.Fatalf("fasthttp's other messages are not logged at debug level: %q", buf.String())
	}
}

func TestFastLoggerQuietAboveDebug(t *testing.T) {
	var buf bytes.Buffer
	l := fastLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	l.Printf("error when serving connection: %v", "reset")
	if buf.Len() != 0 {
		t.Fatalf("logged above its level: %s", buf.String())
	}
}
