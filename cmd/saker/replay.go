package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"

	"github.com/saker-dev/saker/engine/audit"
	"github.com/saker-dev/saker/engine/rules"
)

func init() {
	commands["replay"] = command{
		summary: "evaluate JSONL audit logs (FILE... or - for stdin) against the rules, print alerts as Falco JSON",
		run:     replayCommand,
	}
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// extrasUsage is the help of the --extras flag of replay and rules check.
const extrasUsage = "also load saker's embedded rules pack after the defaults (as rules.extras: true; see docs/rules-extras.md)"

// replayCommand is `saker replay [-r RULES]... [--rule-matching first|all] [--no-defaults] [--extras] FILE...`.
func replayCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ruleFiles stringList
	fs.Var(&ruleFiles, "r", "rules file or directory, loaded after the embedded defaults (repeatable, in order)")
	fs.Var(&ruleFiles, "rules", "same as -r")
	matching := fs.String("rule-matching", "first", "first (only the first matching rule alerts, as Falco) or all")
	noDefaults := fs.Bool("no-defaults", false, "do not load the embedded upstream k8s_audit_rules.yaml")
	extras := fs.Bool("extras", false, extrasUsage)
	maxEvent := fs.Int("max-event-size", audit.DefaultMaxEventSize, "skip audit events larger than this many bytes")
	verbose := fs.Bool("v", false, "log skipped lines and a summary to stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the replay to this file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: saker replay [-r RULES]... [--rule-matching first|all] [--no-defaults] [--extras] FILE...")
		fmt.Fprintln(stderr, "Evaluates kube-apiserver audit logs (JSONL, --audit-log-path format; - for stdin) and")
		fmt.Fprintln(stderr, "prints one Falco JSON alert per line.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "saker replay: no input files (use - for stdin)")
		fs.Usage()
		return 2
	}
	m, err := rules.ParseMatching(*matching)
	if err != nil {
		fmt.Fprintln(stderr, "saker replay: --rule-matching:", err)
		return 2
	}
	files, err := ruleFilesFrom(!*noDefaults, *extras, ruleFiles)
	if err != nil {
		fmt.Fprintln(stderr, "saker replay:", err)
		return 1
	}
	engine, warnings, err := rules.Load(audit.NewSource(), files, rules.Options{Matching: m})
	if err != nil {
		fmt.Fprintln(stderr, "saker replay: rules:", err)
		return 1
	}
	if *verbose {
		for _, w := range warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
	}
	// A batch run's live heap is small and its garbage large: collecting less often is
	// markedly faster and the memory stays bounded by the per-line cap.
	debug.SetGCPercent(400)

	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "saker replay: --cpuprofile:", err)
			return 1
		}
		defer stop()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rp := &audit.Replayer{Engine: engine, MaxEventSize: *maxEvent}
	if *verbose {
		rp.Log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	if err := rp.Run(ctx, fs.Args(), stdout); err != nil {
		fmt.Fprintln(stderr, "saker replay:", err)
		return 1
	}
	if *verbose {
		s := rp.Stats.Snapshot()
		fmt.Fprintf(stderr, "replay: %d events, %d alerts, skipped %v\n", s.Received, s.Alerts, s.Skipped)
	}
	return 0
}

// ruleFilesFrom reads the rule files in order: the embedded defaults first when defaults is
// set, then the embedded extras pack when extras is set (so user files can override both),
// then paths; a directory contributes its *.yaml and *.yml files in name order.
func ruleFilesFrom(defaults, extras bool, paths []string) ([]rules.File, error) {
	if extras && !defaults {
		return nil, errors.New("the extras pack (--extras, rules.extras) needs the defaults: it overrides rules of the embedded k8s_audit_rules.yaml")
	}
	var files []rules.File
	if defaults {
		files = append(files, rules.DefaultFile())
	}
	if extras {
		files = append(files, rules.ExtrasFile())
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("rules file: %w", err)
		}
		names := []string{p}
		if st.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("rules directory: %w", err)
			}
			names = names[:0]
			for _, e := range entries {
				if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
					names = append(names, filepath.Join(p, e.Name()))
				}
			}
			sort.Strings(names)
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				return nil, fmt.Errorf("rules file: %w", err)
			}
			files = append(files, rules.File{Name: n, Data: b})
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no rules: --no-defaults needs at least one -r")
	}
	return files, nil
}
