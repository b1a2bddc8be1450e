// Package stdout prints each event's Falco JSON on standard output, one line per event: the
// output a new user sees first, and a pipe into jq or a log shipper.
package stdout

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// Config is the stdout.* section.
type Config struct {
	Enabled string `koanf:"enabled" doc:"true, false, or auto: on when no other output is configured"`
}

func defaults() *Config { return &Config{Enabled: "auto"} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	switch c.Enabled {
	case "auto", "true", "false":
		return nil
	}
	return fmt.Errorf("stdout.enabled must be true, false or auto, got %q", c.Enabled)
}

// Auto reports whether the output waits for the "no other output" decision.
func (c *Config) Auto() bool { return c.Enabled == "auto" }

func init() {
	s := outputs.Define("stdout", "stdout", defaults,
		func(c *Config) bool { return c.Enabled == "true" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(os.Stdout), nil })
	s.Doc = "print each event's JSON on one line of standard output"
	outputs.Register(s)
}

// Stdout writes JSON lines to a writer.
type Stdout struct {
	mu sync.Mutex
	w  io.Writer
}

// New returns the output writing to w.
func New(w io.Writer) *Stdout { return &Stdout{w: w} }

// Name implements delivery.Output.
func (s *Stdout) Name() string { return "stdout" }

// Send writes one line.
func (s *Stdout) Send(_ context.Context, ev *event.Event) error {
	body := ev.JSON()
	line := make([]byte, 0, len(body)+1)
	line = append(append(line, body...), '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(line); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	return nil
}
