package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Follower follows growing JSONL audit log files like `tail -F` (k8saudit.files) and
// submits the alerts of every new line. It survives rotation (the path is renamed or
// removed and re-created: the old file is read to its end, then the new one from its
// start), truncation (reading restarts at the beginning) and files that do not exist yet.
// It polls, which works on every filesystem including network and overlay ones where
// inotify is unreliable.
type Follower struct {
	// Rules holds the rules and Submitter takes the alerts; both required.
	Rules     *Rules
	Submitter Submitter
	// Poll is how often files are checked for new data (0: 250ms).
	Poll time.Duration
	// FromStart reads files that exist at start from their beginning; by default they are
	// read from their end, as tail -F does, so a restart does not replay old events. Files
	// created later (after rotation) are always read from their start.
	FromStart bool
	// MaxEventSize and MaxLineSize cap events and lines (0: the defaults).
	MaxEventSize int
	MaxLineSize  int
	// Log receives warnings (nil discards).
	Log *slog.Logger
	// Stats counts events, alerts and skips.
	Stats Stats

	onOpen func(path string) // test hook: a file was opened
}

// Run follows every path, one goroutine each, until ctx is done; it returns nil then.
func (f *Follower) Run(ctx context.Context, paths []string) error {
	if f.Rules == nil || f.Rules.Load() == nil || f.Submitter == nil {
		return errors.New("audit follow: rules engine and submitter are required")
	}
	var wg sync.WaitGroup
	for _, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.follow(ctx, p)
		}()
	}
	wg.Wait()
	return nil
}

// tailState is one followed path.
type tailState struct {
	path    string
	file    *os.File
	info    os.FileInfo
	off     int64
	pending []byte // an incomplete last line
	discard bool   // pending line was too long: drop until its newline
	line    int
}

func (f *Follower) follow(ctx context.Context, path string) {
	log := f.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	poll := f.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	maxLine := f.MaxLineSize
	if maxLine <= 0 {
		maxLine = DefaultMaxBatchSize
	}
	wk := newWorker(f.Rules, f.MaxEventSize)
	ts := &tailState{path: path}
	defer func() {
		if ts.file != nil {
			ts.file.Close()
		}
	}()
	first := true
	buf := make([]byte, 256<<10)
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		if ts.file == nil {
			if err := ts.open(first && !f.FromStart); err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					log.Warn("k8s audit file not readable", "file", path, "error", err)
				}
			} else if f.onOpen != nil {
				f.onOpen(path)
			}
			first = false
		}
		if ts.file != nil {
			if err := f.drain(ctx, ts, wk, buf, maxLine, log); err != nil {
				return
			}
			f.checkRotation(ctx, ts, wk, buf, maxLine, log)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (ts *tailState) open(atEnd bool) error {
	fh, err := os.Open(ts.path)
	if err != nil {
		return err
	}
	info, err := fh.Stat()
	if err != nil {
		fh.Close()
		return err
	}
	ts.file, ts.info, ts.off, ts.pending, ts.discard, ts.line = fh, info, 0, ts.pending[:0], false, 0
	if atEnd {
		if ts.off, err = fh.Seek(0, io.SeekEnd); err != nil {
			fh.Close()
			ts.file = nil
			return err
		}
	}
	return nil
}

// checkRotation reopens the path when it now names another file (rotation) and rewinds
// when the file shrank (truncation).
func (f *Follower) checkRotation(ctx context.Context, ts *tailState, wk *worker, buf []byte, maxLine int, log *slog.Logger) {
	info, err := os.Stat(ts.path)
	if err != nil {
		return // removed: keep the old file until the path comes back
	}
	if !os.SameFile(info, ts.info) {
		// Rotated: finish the old file (a writer may have added to it since the last
		// read), including an unterminated last line, then switch.
		_ = f.drain(ctx, ts, wk, buf, maxLine, log)
		f.flushPending(ctx, ts, wk, maxLine, log)
		ts.file.Close()
		ts.file = nil
		if err := ts.open(false); err != nil {
			log.Warn("k8s audit file not readable", "file", ts.path, "error", err)
		} else if f.onOpen != nil {
			f.onOpen(ts.path)
		}
		return
	}
	if info.Size() < ts.off {
		log.Info("k8s audit file truncated, reading from its start", "file", ts.path)
		if _, err := ts.file.Seek(0, io.SeekStart); err == nil {
			ts.off, ts.pending, ts.discard, ts.line = 0, ts.pending[:0], false, 0
		}
	}
}

// drain reads the file to its current end and handles every complete line.
func (f *Follower) drain(ctx context.Context, ts *tailState, wk *worker, buf []byte, maxLine int, log *slog.Logger) error {
	for {
		n, err := ts.file.Read(buf)
		if n > 0 {
			ts.off += int64(n)
			if herr := f.feed(ctx, ts, wk, buf[:n], maxLine, log); herr != nil {
				return herr
			}
		}
		if err == io.EOF || n == 0 {
			return nil
		}
		if err != nil {
			log.Warn("k8s audit file read failed", "file", ts.path, "error", err)
			return nil
		}
	}
}

// feed splits data into lines, keeping an incomplete last line pending.
func (f *Follower) feed(ctx context.Context, ts *tailState, wk *worker, data []byte, maxLine int, log *slog.Logger) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if !ts.discard {
				ts.pending = append(ts.pending, data...)
				if len(ts.pending) > maxLine {
					ts.pending, ts.discard = ts.pending[:0], true
				}
			}
			return nil
		}
		chunk := data[:i]
		data = data[i+1:]
		ts.line++
		if ts.discard || len(ts.pending)+len(chunk) > maxLine {
			ts.pending, ts.discard = ts.pending[:0], false
			f.Stats.skip(SkipOversize)
			log.Warn("k8s audit line skipped", "file", ts.path, "line", ts.line, "reason", SkipOversize.String(),
				"error", fmt.Sprintf("line longer than %d bytes", maxLine))
			continue
		}
		line := chunk
		if len(ts.pending) > 0 {
			ts.pending = append(ts.pending, chunk...)
			line = ts.pending
		}
		err := f.handleLine(ctx, ts, wk, line, log)
		ts.pending = ts.pending[:0]
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *Follower) flushPending(ctx context.Context, ts *tailState, wk *worker, maxLine int, log *slog.Logger) {
	if len(ts.pending) > 0 && !ts.discard {
		ts.line++
		_ = f.handleLine(ctx, ts, wk, ts.pending, log)
	}
	ts.pending, ts.discard = ts.pending[:0], false
}

// handleLine evaluates one line and submits its alerts, retrying a refused alert until it
// is accepted or ctx is done (which is the only error returned).
func (f *Follower) handleLine(ctx context.Context, ts *tailState, wk *worker, line []byte, log *slog.Logger) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil
	}
	f.Stats.Payloads.Add(1)
	err := wk.p.Parse(line, func(ev *Event) error {
		now := time.Now()
		for _, a := range wk.evaluate(ev, &f.Stats) {
			a.Received = now
			for {
				err := f.Submitter.Submit(ctx, a)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				log.Warn("k8s audit alert not accepted, retrying", "file", ts.path, "line", ts.line, "error", err)
				t := time.NewTimer(time.Second)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
		}
		return nil
	}, func(ie *ItemError) {
		f.Stats.skip(ie.Reason)
		log.Warn("k8s audit event skipped", "file", ts.path, "line", ts.line, "item", ie.Item, "offset", ie.Offset,
			"reason", ie.Reason.String(), "error", ie.Err)
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		reason := SkipMalformed
		if errors.Is(err, ErrNotAuditEvent) {
			reason = SkipNotAudit
		}
		f.Stats.skip(reason)
		log.Warn("k8s audit line skipped", "file", ts.path, "line", ts.line, "reason", reason.String(), "error", err)
	}
	return nil
}
