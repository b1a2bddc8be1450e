package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/saker-dev/saker/engine/rules"
)

// Replayer is the offline audit log source behind `saker replay`: it evaluates JSONL audit
// logs (kube-apiserver --audit-log-path format: one Event, or an EventList or array, per
// line) against the rules and writes each alert as a Falco JSON line.
type Replayer struct {
	// Engine holds the rules; required.
	Engine *rules.Engine
	// MaxEventSize caps one event (0: DefaultMaxEventSize); MaxLineSize caps one line
	// (0: DefaultMaxBatchSize). Larger ones are skipped and counted as oversize.
	MaxEventSize int
	MaxLineSize  int
	// Log receives one warning per skipped line or event; nil discards.
	Log *slog.Logger
	// Stdin is read for "-"; nil means os.Stdin.
	Stdin io.Reader
	// Stats counts events, alerts and skips; read it after Run.
	Stats Stats
}

// Run replays every input in order and writes the alerts to w. It stops at the first input
// that cannot be opened or read, or when ctx is done.
func (rp *Replayer) Run(ctx context.Context, names []string, w io.Writer) error {
	if rp.Engine == nil {
		return errors.New("audit replay: no rules engine")
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	wk := newWorker(NewRules(rp.Engine), rp.MaxEventSize)
	for _, name := range names {
		var in io.Reader
		if name == "-" {
			in = rp.Stdin
			if in == nil {
				in = os.Stdin
			}
		} else {
			f, err := os.Open(name)
			if err != nil {
				return fmt.Errorf("audit replay: %w", err)
			}
			in = f
			defer f.Close()
		}
		if err := rp.replay(ctx, wk, name, in, bw); err != nil {
			_ = bw.Flush()
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit replay: writing alerts: %w", err)
	}
	return nil
}

// ReplayReader replays one input named name (for messages) and writes alerts to w.
func (rp *Replayer) ReplayReader(ctx context.Context, name string, in io.Reader, w io.Writer) error {
	if rp.Engine == nil {
		return errors.New("audit replay: no rules engine")
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	err := rp.replay(ctx, newWorker(NewRules(rp.Engine), rp.MaxEventSize), name, in, bw)
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("audit replay: writing alerts: %w", ferr)
	}
	return err
}

func (rp *Replayer) replay(ctx context.Context, wk *worker, name string, in io.Reader, bw *bufio.Writer) error {
	log := rp.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxLine := rp.MaxLineSize
	if maxLine <= 0 {
		maxLine = DefaultMaxBatchSize
	}
	lr := newLineReader(in, maxLine)
	var werr error
	var line []byte
	var keys []string
	yield := func(ev *Event) error {
		for _, a := range wk.evaluate(ev, &rp.Stats) {
			line = append(a.AppendJSON(line[:0], &keys), '\n')
			if _, err := bw.Write(line); err != nil {
				werr = err
				return err
			}
		}
		return nil
	}
	lineNo := 0
	skip := func(ie *ItemError) {
		rp.Stats.skip(ie.Reason)
		log.Warn("k8s audit event skipped", "file", name, "line", lineNo, "item", ie.Item, "offset", ie.Offset,
			"reason", ie.Reason.String(), "error", ie.Err)
	}
	for {
		text, tooLong, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit replay: reading %s after line %d: %w", name, lineNo, err)
		}
		lineNo = lr.n
		if lineNo%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if tooLong {
			rp.Stats.skip(SkipOversize)
			log.Warn("k8s audit line skipped", "file", name, "line", lineNo, "reason", SkipOversize.String(),
				"error", fmt.Sprintf("line longer than %d bytes", maxLine))
			continue
		}
		text = bytes.TrimSpace(text)
		if len(text) == 0 {
			continue
		}
		rp.Stats.Payloads.Add(1)
		if err := wk.p.Parse(text, yield, skip); err != nil {
			if werr != nil {
				return fmt.Errorf("audit replay: writing alerts: %w", werr)
			}
			reason := SkipMalformed
			if errors.Is(err, ErrNotAuditEvent) {
				reason = SkipNotAudit
			}
			rp.Stats.skip(reason)
			log.Warn("k8s audit line skipped", "file", name, "line", lineNo, "reason", reason.String(), "error", err)
		}
	}
}

// lineReader reads newline-terminated lines without copying the ordinary ones; a line
// longer than max is consumed and reported as too long.
type lineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
	n   int // number of the last line returned (1-based)
}

func newLineReader(r io.Reader, limit int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 256<<10), max: limit}
}

// next returns the next line without its newline; the slice is valid until the next call.
func (lr *lineReader) next() (line []byte, tooLong bool, err error) {
	b, err := lr.r.ReadSlice('\n')
	if err == nil || (err == io.EOF && len(b) > 0) {
		lr.n++
		b = bytes.TrimSuffix(b, []byte("\n"))
		return b, len(b) > lr.max, nil
	}
	if err != bufio.ErrBufferFull {
		return nil, false, err
	}
	lr.n++
	lr.buf = append(lr.buf[:0], b...)
	for {
		b, err = lr.r.ReadSlice('\n')
		if len(lr.buf)+len(b) > lr.max {
			tooLong = true
			lr.buf = lr.buf[:0]
		} else if !tooLong {
			lr.buf = append(lr.buf, b...)
		}
		switch err {
		case bufio.ErrBufferFull:
			continue
		case nil, io.EOF:
			if tooLong {
				return nil, true, nil
			}
			return bytes.TrimSuffix(lr.buf, []byte("\n")), false, nil
		default:
			return nil, false, err
		}
	}
}
