// Package file appends each event's Falco JSON to a file, one line per event, rotating the
// file by size so a busy host cannot fill its disk.
package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// Config is the file.* section.
type Config struct {
	Path       string `koanf:"path" doc:"file the JSON lines are appended to; setting it enables the output"`
	OutputFile string `koanf:"outputfile" doc:"falcosidekick's name for path, used when path is empty"`
	MaxSize    int    `koanf:"maxsize" doc:"rotate when the file reaches this many megabytes; 0 never rotates"`
	MaxBackups int    `koanf:"maxbackups" doc:"rotated files kept; 0 keeps all"`
	Compress   bool   `koanf:"compress" doc:"gzip rotated files"`
}

func defaults() *Config { return &Config{MaxSize: 100, MaxBackups: 5} }

// File returns the configured path, honouring falcosidekick's outputfile name.
func (c *Config) File() string {
	if c.Path != "" {
		return c.Path
	}
	return c.OutputFile
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	switch {
	case c.MaxSize < 0:
		return fmt.Errorf("file.maxsize must not be negative, got %d", c.MaxSize)
	case c.MaxBackups < 0:
		return fmt.Errorf("file.maxbackups must not be negative, got %d", c.MaxBackups)
	}
	return nil
}

func init() {
	s := outputs.Define("file", "file", defaults,
		func(c *Config) bool { return c.File() != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c) })
	s.Doc = "append each event's JSON as one line to a file, rotated by size"
	outputs.Register(s)
}

// File is the output.
type File struct {
	mu sync.Mutex
	w  *lumberjack.Logger
}

// New opens the file's directory check and returns the output; the file is created on the
// first event.
func New(c *Config) (*File, error) {
	path := c.File()
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("file.path %s: directory %s does not exist", path, dir)
	}
	maxSize := c.MaxSize
	if maxSize == 0 {
		maxSize = 1 << 20 // lumberjack has no "never": a terabyte is never in practice
	}
	return &File{w: &lumberjack.Logger{Filename: path, MaxSize: maxSize, MaxBackups: c.MaxBackups, Compress: c.Compress}}, nil
}

// Name implements delivery.Output.
func (f *File) Name() string { return "file" }

// Send appends one line.
func (f *File) Send(_ context.Context, ev *event.Event) error {
	body := ev.JSON()
	line := make([]byte, 0, len(body)+1)
	line = append(append(line, body...), '\n')
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.w.Write(line); err != nil {
		return fmt.Errorf("file %s: %w", f.w.Filename, err)
	}
	return nil
}

// Close closes the file.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.w.Close()
}
