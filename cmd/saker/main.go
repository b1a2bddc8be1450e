// Command saker receives Falco alerts and Kubernetes audit events and delivers them to
// outputs. This file holds flags, subcommands and signals; wiring is in wire.go.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is a subcommand: `saker config check`, `saker replay`...
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
	// globalFlags marks a command that reads the configuration: -c and --set given before
	// its name (`saker -c f.yaml config check`) are passed on to it.
	globalFlags bool
}

// commands maps "config check" style names to their implementation; files of this package
// add theirs in init.
var commands = map[string]command{}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	lead := leadingGlobalFlags(args)
	rest := args[lead:]
	for _, n := range []int{2, 1} {
		if len(rest) < n {
			continue
		}
		name := strings.Join(rest[:n], " ")
		c, ok := commands[name]
		if !ok {
			continue
		}
		if lead == 0 {
			return c.run(rest[n:], stdout, stderr)
		}
		if !c.globalFlags {
			fmt.Fprintf(stderr, "saker: %s takes no -c/--config-file/--set (they configure the daemon and config check); put its own flags after its name\n", name)
			return 2
		}
		return c.run(append(append([]string(nil), args[:lead]...), rest[n:]...), stdout, stderr)
	}
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		fmt.Fprintf(stderr, "saker: unknown command %q\n\n", rest[0])
		usage(stderr)
		return 2
	}
	return serve(args, stdout, stderr)
}

// leadingGlobalFlags counts the arguments at the start of args that are global flags with
// their values (-c FILE, --config-file=FILE, --set k=v, --cpuprofile FILE, --version), so a
// subcommand named after them is still found.
func leadingGlobalFlags(args []string) int {
	i := 0
	for i < len(args) {
		name, hasValue := strings.CutPrefix(args[i], "--")
		if !hasValue {
			var ok bool
			if name, ok = strings.CutPrefix(args[i], "-"); !ok || name == "" {
				return i
			}
		}
		name, _, inline := strings.Cut(name, "=")
		switch name {
		case "c", "config-file", "set", "cpuprofile":
			if inline {
				i++
			} else {
				i += 2
			}
		case "version":
			i++
		default:
			return i
		}
	}
	return min(i, len(args))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: saker [-c FILE] [--set key=value]...   run the daemon")
	fmt.Fprintln(w, "       saker [-c FILE] [--set key=value]... config check")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "       saker %-12s %s\n", n, commands[n].summary)
	}
}

// globalFlags are the flags shared by the daemon and `config check`.
type globalFlags struct {
	configFile string
	set        map[string]string
	version    bool
	cpuProfile string // the daemon's CPU profile, start to shutdown (make pgo)
}

func parseGlobalFlags(name string, args []string, stderr io.Writer) (*globalFlags, error) {
	g := &globalFlags{set: map[string]string{}}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&g.configFile, "c", "", "config file (YAML, falcosidekick keys)")
	fs.StringVar(&g.configFile, "config-file", "", "config file (YAML, falcosidekick keys)")
	fs.BoolVar(&g.version, "version", false, "print the version and exit")
	if name == "saker" {
		fs.StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile of the daemon, from start to shutdown, to this file (make pgo)")
	}
	fs.Func("set", "override a key: --set slack.minimumpriority=error (repeatable; beats file and env)", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return fmt.Errorf("--set wants key=value, got %q", v)
		}
		g.set[k] = val
		return nil
	})
	fs.Usage = func() { usage(stderr); fmt.Fprintln(stderr); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return g, nil
}

func init() {
	commands["version"] = command{summary: "print the version", run: func(_ []string, stdout, _ io.Writer) int {
		fmt.Fprintln(stdout, "saker", version)
		return 0
	}}
	commands["config check"] = command{summary: "validate the configuration and print it, secrets redacted", run: configCheck, globalFlags: true}
}

func configCheck(args []string, stdout, stderr io.Writer) int {
	g, err := parseGlobalFlags("config check", args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "saker config check:", err)
		return 2
	}
	cfg, err := loadConfig(g, os.Environ())
	if cfg != nil {
		for _, w := range cfg.result.Warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
	}
	if err != nil {
		var errs interface{ Unwrap() []error }
		fmt.Fprintln(stderr, "configuration is invalid:")
		if errors.As(err, &errs) {
			for _, e := range errs.Unwrap() {
				fmt.Fprintln(stderr, "  -", e)
			}
		} else {
			fmt.Fprintln(stderr, "  -", err)
		}
		return 1
	}
	for _, line := range cfg.result.Redacted() {
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "# enabled outputs: %s\n", strings.Join(cfg.enabledNames(), ", "))
	for _, oc := range cfg.enabled() {
		p := oc.policy
		fmt.Fprintf(stdout, "# %s delivery: minimumpriority=%q queuesize=%d maxconcurrentrequests=%d timeout=%s whenfull=%s retry.initial=%s retry.max=%s retry.maxelapsed=%s retry.maxattempts=%d batch.maxevents=%d\n",
			oc.spec.Name, p.MinimumPriority, p.QueueSize, p.MaxConcurrentRequests, p.Timeout, p.WhenFull,
			p.Retry.Initial, p.Retry.Max, p.Retry.MaxElapsed, p.Retry.MaxAttempts, p.Batch.MaxEvents)
	}
	return 0
}
