package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

func init() {
	commands["deadletter replay"] = command{
		summary: "send the events of a dead-letter file (deadletter.path) back to a running saker, each to the output that gave up on it",
		run:     deadletterReplayCommand,
	}
}

// deadRecord is what replay reads of a dead-letter line (delivery.DeadLetter writes them).
type deadRecord struct {
	Output string          `json:"output"`
	Reason string          `json:"reason"`
	Event  json.RawMessage `json:"event"`
}

// replayTries bounds the attempts of one event refused with 503 (saker's queue or spool
// full, NATS unreachable): each waits the Retry-After saker sent.
const replayTries = 30

// deadletterReplayCommand is `saker deadletter replay [--url URL] [--output NAME]...
// [--reason R]... [--to NAME] [--dry-run] FILE`. Each record's event is posted to
// URL/?output=<its output>, so the outputs that did receive it do not get it twice; the event
// keeps its uuid, so a receiver that deduplicates sees it once. What could not be replayed is
// written to --rest, to try again later.
func deadletterReplayCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("deadletter replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:2801", "the running saker's address (its POST / endpoint)")
	var outputs, reasons stringList
	fs.Var(&outputs, "output", "replay only the records of this output (repeatable; default: every output)")
	fs.Var(&reasons, "reason", "replay only the records of this reason: expired, permanent, queue_full, shutdown, max_deliveries, output_removed (repeatable; default: every reason)")
	to := fs.String("to", "", "send every replayed event to this output instead of the one named in its record")
	rest := fs.String("rest", "", "file receiving the records not replayed (refused or unreachable), in the same format, to try again later")
	dryRun := fs.Bool("dry-run", false, "list what would be replayed, send nothing")
	token := fs.String("token", os.Getenv("SAKER_TOKEN"), "bearer token of saker's inputs (auth.token; default $SAKER_TOKEN)")
	basic := fs.String("basic", os.Getenv("SAKER_BASIC"), "user:password of saker's inputs (HTTP basic; default $SAKER_BASIC)")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of one request")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: saker deadletter replay [flags] FILE  (FILE - reads stdin; move the file aside first: what fails again is appended to a new one)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "saker deadletter replay: --url %q must be an http:// or https:// address\n", *base)
		return 2
	}
	in, name, closeIn, err := openInput(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "saker deadletter replay: %v\n", err)
		return 1
	}
	defer closeIn()
	var restW *os.File
	if *rest != "" && !*dryRun {
		if restW, err = os.OpenFile(*rest, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			fmt.Fprintf(stderr, "saker deadletter replay: --rest: %v\n", err)
			return 1
		}
		defer restW.Close()
	}
	r := &replayer{client: &http.Client{Timeout: *timeout}, base: strings.TrimSuffix(u.String(), "/"), token: *token, basic: *basic}
	keep := func(list stringList, v string) bool {
		if len(list) == 0 {
			return true
		}
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	}
	var replayed, skipped, failed int
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for line := 1; sc.Scan(); line++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var rec deadRecord
		if err := json.Unmarshal(raw, &rec); err != nil || rec.Output == "" || len(rec.Event) == 0 {
			if err == nil {
				err = errors.New(`not a dead-letter record: "output" or "event" missing`)
			}
			fmt.Fprintf(stderr, "%s:%d: %v\n", name, line, err)
			failed++
			continue
		}
		if !keep(outputs, rec.Output) || !keep(reasons, rec.Reason) {
			skipped++
			continue
		}
		target := rec.Output
		if *to != "" {
			target = *to
		}
		if *dryRun {
			fmt.Fprintf(stdout, "%s:%d: would send event %s to %s (%s)\n", name, line, eventUUID(rec.Event), target, rec.Reason)
			replayed++
			continue
		}
		if err := r.send(target, rec.Event); err != nil {
			fmt.Fprintf(stderr, "%s:%d: event %s to %s: %v\n", name, line, eventUUID(rec.Event), target, err)
			failed++
			if restW != nil {
				if _, werr := restW.Write(append(append([]byte(nil), raw...), '\n')); werr != nil {
					fmt.Fprintf(stderr, "saker deadletter replay: --rest: %v\n", werr)
					return 1
				}
			}
			if errors.Is(err, errUnreachable) {
				fmt.Fprintln(stderr, "saker deadletter replay: saker unreachable; stopping")
				return 1
			}
			continue
		}
		replayed++
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "saker deadletter replay: read %s: %v\n", name, err)
		return 1
	}
	verb := "replayed"
	if *dryRun {
		verb = "would replay"
	}
	fmt.Fprintf(stdout, "%s %d events, skipped %d (--output/--reason), failed %d\n", verb, replayed, skipped, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

func openInput(path string) (io.Reader, string, func(), error) {
	if path == "-" {
		return os.Stdin, "stdin", func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", nil, err
	}
	return f, path, func() { f.Close() }, nil
}

func eventUUID(ev json.RawMessage) string {
	var e struct{ UUID string }
	_ = json.Unmarshal(ev, &e)
	if e.UUID == "" {
		return "(no uuid)"
	}
	return e.UUID
}

// errUnreachable is a request that got no answer: the rest of the file would fail alike.
var errUnreachable = errors.New("saker unreachable")

type replayer struct {
	client       *http.Client
	base         string
	token, basic string
}

// send posts ev to saker for output, waiting out 503s (Retry-After) up to replayTries.
func (r *replayer) send(output string, ev json.RawMessage) error {
	for try := 1; ; try++ {
		req, err := http.NewRequest(http.MethodPost, r.base+"/?output="+url.QueryEscape(output), bytes.NewReader(ev))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		switch {
		case r.token != "":
			req.Header.Set("Authorization", "Bearer "+r.token)
		case r.basic != "":
			user, pass, _ := strings.Cut(r.basic, ":")
			req.SetBasicAuth(user, pass)
		}
		resp, err := r.client.Do(req)
		if err != nil {
			return fmt.Errorf("%w: %v", errUnreachable, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		if resp.StatusCode != http.StatusServiceUnavailable || try >= replayTries {
			return fmt.Errorf("saker answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		time.Sleep(wait)
	}
}
