package delivery

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

// DeadLetter appends events that could not be delivered to a JSON-lines file, one record per
// event and output, so an operator can inspect or replay them.
type DeadLetter struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

// deadRecord is one line of the dead-letter file.
type deadRecord struct {
	Time     time.Time       `json:"time"`
	Output   string          `json:"output"`
	Reason   string          `json:"reason"`
	Error    string          `json:"error,omitempty"`
	Attempts int             `json:"attempts"`
	Event    json.RawMessage `json:"event"`
}

// OpenDeadLetter opens (creating, appending) the file at path.
func OpenDeadLetter(path string) (*DeadLetter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open dead-letter file: %w", err)
	}
	return &DeadLetter{f: f, path: path}, nil
}

// Write appends one record.
func (d *DeadLetter) Write(output, reason string, cause error, attempts int, ev *event.Event) error {
	rec := deadRecord{Time: time.Now().UTC(), Output: output, Reason: reason, Attempts: attempts, Event: ev.JSON()}
	if cause != nil {
		rec.Error = cause.Error()
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode dead-letter record: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write dead-letter file %s: %w", d.path, err)
	}
	return nil
}

// Close syncs and closes the file.
func (d *DeadLetter) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.f.Sync(); err != nil {
		d.f.Close()
		return fmt.Errorf("sync dead-letter file %s: %w", d.path, err)
	}
	return d.f.Close()
}
