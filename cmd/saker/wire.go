package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/saker-dev/saker/config"
	"github.com/saker-dev/saker/engine/audit"
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/delivery/jetstream"
	"github.com/saker-dev/saker/engine/enrich"
	"github.com/saker-dev/saker/engine/httpin"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/engine/metrics"
	"github.com/saker-dev/saker/engine/pipeline"
	"github.com/saker-dev/saker/engine/rules"
	"github.com/saker-dev/saker/engine/statsd"
	"github.com/saker-dev/saker/engine/tlsconf"
	"github.com/saker-dev/saker/engine/webui"
	"github.com/saker-dev/saker/outputs"
	_ "github.com/saker-dev/saker/outputs/all" // every output registers itself
)

// loadedConfig is one load of the configuration: every section decoded, each output's own
// config and policy, and what loading compiled (policies, rules). The daemon runs with one;
// a reload loads another and applies it, or keeps the running one when it is refused.
type loadedConfig struct {
	result  *config.Result
	global  *config.Global
	policy  *delivery.Policy // top-level delivery defaults
	outputs []outputConfig
	// The other inputs' and the bus's sections.
	audit    *auditConfig
	rules    *rulesConfig
	spool    *jetstream.SpoolConfig
	external *jetstream.ExternalConfig
	ui       *webui.Config
	extra    []config.Section // the five above, for the reference docs
	// sections is everything Load decodes, in order.
	sections []config.Section
	// aliases are the outputs' alternative key names.
	aliases []config.Alias
	// extraLabels are falco_events_total's extra labels (customfields, templatedfields,
	// prometheus.extralabels), and labelWarnings the ones left out.
	extraLabels   []metrics.ExtraLabel
	labelWarnings []string
	// ruleEngine holds the compiled audit rules and ruleWarnings what loading them reported.
	ruleEngine   *rules.Engine
	ruleWarnings []rules.Warning
}

type outputConfig struct {
	spec   outputs.Spec
	cfg    any
	policy *delivery.Policy
	// prepared is policy checked and compiled (enabled outputs of a valid configuration).
	prepared *delivery.Prepared
}

// newLoadedConfig declares every section with its defaults: the global keys, the global
// delivery policy, other inputs' sections, and each output's keys and delivery policy.
func newLoadedConfig() *loadedConfig {
	lc := &loadedConfig{global: config.DefaultGlobal(), audit: defaultAuditConfig(), rules: defaultRulesConfig(),
		spool: jetstream.DefaultSpoolConfig(), external: jetstream.DefaultExternalConfig(), ui: webui.DefaultConfig()}
	p := delivery.DefaultPolicy()
	lc.policy = &p
	lc.sections = []config.Section{{Path: "", Target: lc.global}, {Path: "", Target: lc.policy}}
	lc.extra = []config.Section{{Path: "k8saudit", Target: lc.audit}, {Path: "rules", Target: lc.rules},
		{Path: "spool", Target: lc.spool}, {Path: "bus.jetstream", Target: lc.external}, {Path: "ui", Target: lc.ui}}
	lc.sections = append(lc.sections, lc.extra...)
	for _, spec := range outputs.All() {
		oc := outputConfig{spec: spec, cfg: spec.Config(), policy: &delivery.Policy{}}
		lc.sections = append(lc.sections, config.Section{Path: spec.Section, Target: oc.cfg})
		lc.sections = append(lc.sections, config.Section{Path: spec.PolicyPath, Target: oc.policy, Inherit: true,
			Prepare: func() {
				*oc.policy = *lc.policy
				if oc.policy.Batch == (delivery.BatchPolicy{}) {
					oc.policy.Batch = spec.Batch
				}
			}})
		lc.outputs = append(lc.outputs, oc)
		lc.aliases = append(lc.aliases, spec.Aliases...)
	}
	return lc
}

func loadConfig(g *globalFlags, environ []string) (*loadedConfig, error) {
	lc := newLoadedConfig()
	sections := lc.sections
	res, err := config.Load(config.Options{File: g.configFile, Environ: environ, Flags: g.set, Sections: sections, Aliases: lc.aliases})
	if res == nil {
		return nil, err
	}
	lc.result = res
	for _, oc := range lc.outputs {
		if oc.spec.Concurrency > 0 && !res.IsSet("maxconcurrentrequests") && !res.IsSet(oc.spec.PolicyPath+".maxconcurrentrequests") {
			oc.policy.MaxConcurrentRequests = oc.spec.Concurrency
		}
	}
	var errs config.Errors
	if err != nil {
		if !errors.As(err, &errs) {
			return lc, err
		}
	}
	gl := lc.global
	lc.extraLabels, lc.labelWarnings = metrics.EventExtraLabels(gl.CustomFields, gl.TemplatedFields, gl.Prometheus.ExtraLabels)
	res.Warnings = append(res.Warnings, lc.inputWarnings()...)
	if aerr := auditTLSError(lc.audit, lc.global.TLSServer); aerr != nil {
		errs = append(errs, aerr)
	}
	if berr := lc.busConfigError(); berr != nil {
		errs = append(errs, berr)
	}
	if serr := lc.statsdError(); serr != nil {
		errs = append(errs, serr)
	}
	if _, perr := delivery.Prepare("", *lc.policy); perr != nil {
		errs = append(errs, perr)
	} else {
		on := map[string]bool{}
		for _, name := range lc.enabledNames() {
			on[name] = true
		}
		for i, oc := range lc.outputs {
			if !on[oc.spec.Name] {
				continue
			}
			prep, perr := delivery.Prepare(oc.spec.PolicyPath, *oc.policy)
			if perr != nil {
				errs = append(errs, perr)
				continue
			}
			lc.outputs[i].prepared = prep
		}
	}
	if _, eerr := enrich.New(lc.enrichOptions()); eerr != nil {
		errs = append(errs, eerr)
	}
	if len(errs) == 0 {
		// The rules come last: their errors would only repeat a broken rules section's.
		var rerr error
		if lc.ruleEngine, lc.ruleWarnings, rerr = loadRules(lc.rules); rerr != nil {
			errs = append(errs, fmt.Errorf("rules: %w", rerr))
		}
	}
	if len(errs) > 0 {
		return lc, errs
	}
	return lc, nil
}

// enabled lists the outputs whose address key is set; stdout's "auto" turns it on when
// nothing else is.
func (lc *loadedConfig) enabled() []outputConfig {
	var on []outputConfig
	var auto *outputConfig
	for i, oc := range lc.outputs {
		if oc.spec.Enabled(oc.cfg) {
			on = append(on, oc)
		} else if a, ok := oc.cfg.(interface{ Auto() bool }); ok && a.Auto() {
			auto = &lc.outputs[i]
		}
	}
	if len(on) == 0 && auto != nil {
		on = append(on, *auto)
	}
	return on
}

func (lc *loadedConfig) enabledNames() []string {
	var names []string
	for _, oc := range lc.enabled() {
		names = append(names, oc.spec.Name)
	}
	return names
}

func (lc *loadedConfig) enrichOptions() enrich.Options {
	g := lc.global
	return enrich.Options{CustomFields: g.CustomFields, TemplatedFields: g.TemplatedFields, CustomTags: g.CustomTags,
		BracketReplacer: g.BracketReplacer, OutputFieldFormat: g.OutputFieldFormat}
}

// metricsOptions are falco_events_total's cap and extra labels (customfields,
// templatedfields and prometheus.extralabels, as falcosidekick labels it).
func (lc *loadedConfig) metricsOptions() metrics.Options {
	return metrics.Options{MaxEventSeries: lc.global.Metrics.MaxEventSeries, ExtraLabels: lc.extraLabels}
}

// inputWarnings are the listeners' and metrics' non-fatal problems, for `config check` and
// start-up: labels left out of falco_events_total, an audit listener open to any client.
func (lc *loadedConfig) inputWarnings() []string {
	return append(slices.Clone(lc.labelWarnings), auditListenerWarnings(lc.audit, lc.global.TLSServer)...)
}

func (lc *loadedConfig) tlsFiles() httpout.TLSFiles {
	g := lc.global
	files := httpout.DefaultTLSFiles(g.MutualTLSFilesPath)
	if g.MutualTLSClient.CertFile != "" {
		files.CertFile = g.MutualTLSClient.CertFile
	}
	if g.MutualTLSClient.KeyFile != "" {
		files.KeyFile = g.MutualTLSClient.KeyFile
	}
	switch {
	case g.TLSClient.CACertFile != "":
		files.CACertFile = g.TLSClient.CACertFile
	case g.MutualTLSClient.CACertFile != "":
		files.CACertFile = g.MutualTLSClient.CACertFile
	default:
		if _, err := os.Stat(files.CACertFile); err != nil {
			files.CACertFile = "" // the default folder is optional
		}
	}
	return files
}

func newLogger(g *config.Global, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if g.Debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if g.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// app is the running daemon's parts.
type app struct {
	cfg      *loadedConfig // the configuration running, replaced by each applied reload
	boot     *loadedConfig // the one saker started with: what only a restart changes
	rules    *audit.Rules  // the audit rules, swapped by a reload
	flags    *globalFlags  // what reload re-reads the configuration with
	reloads  *reloadMetrics
	reloadMu sync.Mutex
	log      *slog.Logger
	metrics  *metrics.Metrics
	statsd   []*statsd.Sink // closed last, after the final counts
	engine   *delivery.Engine
	pipeline *pipeline.Pipeline
	server   *httpin.Server
	// closeBus disconnects the durable bus (and stops the embedded NATS server) after the
	// engine stopped; a no-op for the memory bus.
	closeBus func()
	// sharedBus is the external JetStream bus, on which the replicas' UIs share their
	// events; nil in the other modes.
	sharedBus *jetstream.Bus
	// stops are run by other inputs (the audit listener and followers) after the HTTP
	// listener closed and before the queues drain.
	stops []func()
	// beforeShutdown run before the listener closes (ending the UI's live streams, which
	// would otherwise hold the shutdown until its deadline).
	beforeShutdown []func()
}

// startHooks run after the pipeline exists and before the listener opens.
var startHooks []func(a *app) error

func build(cfg *loadedConfig, log *slog.Logger) (*app, error) {
	sinks, err := startStatsd(cfg, log)
	if err != nil {
		return nil, err
	}
	built := false
	defer func() {
		if !built {
			closeStatsd(sinks)
		}
	}()
	mopts := cfg.metricsOptions()
	for _, s := range sinks {
		mopts.Sinks = append(mopts.Sinks, s)
	}
	a := &app{cfg: cfg, boot: cfg, log: log, metrics: metrics.NewWith(mopts), statsd: sinks}
	if err := registerStatsdDrops(a.metrics, sinks, cfg.statsdOptions(log)); err != nil {
		return nil, err
	}
	a.reloads = newReloadMetrics(a.metrics.Registry)
	var dead *delivery.DeadLetter
	if p := cfg.global.DeadLetter.Path; p != "" {
		d, err := delivery.OpenDeadLetter(p)
		if err != nil {
			return nil, fmt.Errorf("deadletter.path: %w", err)
		}
		dead = d
	}
	bus, shared, closeBus, err := cfg.openBus(log)
	if err != nil {
		if dead != nil {
			_ = dead.Close()
		}
		return nil, err
	}
	a.closeBus, a.sharedBus = closeBus, shared
	a.engine = delivery.NewEngine(bus, a.metrics, dead, log)
	a.engine.DeliverInRounds(cfg.global.DeliveryRound)
	for _, oc := range cfg.enabled() {
		out, redact, err := cfg.buildOutput(oc, log)
		if err != nil {
			return nil, err
		}
		if err := a.engine.AddPrepared(out, oc.prepared, redact); err != nil {
			return nil, err
		}
	}
	enr, err := enrich.New(cfg.enrichOptions())
	if err != nil {
		return nil, err
	}
	a.pipeline = pipeline.New(enr, a.engine, a.metrics, log)
	token, err := cfg.global.Auth.ResolveToken()
	if err != nil {
		return nil, err
	}
	creds := httpin.Credentials{Token: token, BasicUser: cfg.global.Auth.Basic.User,
		BasicPassword: cfg.global.Auth.Basic.Password, ProtectAll: cfg.global.Auth.ProtectAll}
	a.server = httpin.New(httpin.Options{MaxBodySize: cfg.global.MaxBodySize, MaxInFlightBody: cfg.global.MaxInFlightBodyBytes,
		Version: version, Auth: creds}, a.pipeline, a.engine, a.metrics, log)
	log.Info("input authentication", "token", token != "", "basic", creds.BasicUser != "", "protectall", creds.ProtectAll)
	a.server.Handle("/-/reload", http.HandlerFunc(a.handleReload))
	for _, hook := range startHooks {
		if err := hook(a); err != nil {
			return nil, err
		}
	}
	built = true
	return a, nil
}

// buildOutput makes oc's output, with the option that keeps its secrets out of every error
// text: the engine's (logs, /healthz, dead letters) and whatever the output logs itself.
func (lc *loadedConfig) buildOutput(oc outputConfig, log *slog.Logger) (delivery.Output, delivery.AddOption, error) {
	redactor := delivery.NewRedactor(outputs.Secrets(oc.cfg)...)
	env := outputs.Env{Policy: *oc.policy, TLS: lc.tlsFiles(),
		Log: slog.New(redactor.Handler(log.Handler())).With("output", oc.spec.Name)}
	for _, on := range lc.enabled() {
		env.Outputs = append(env.Outputs, on.spec.Name)
	}
	env.CustomFields = slices.Sorted(maps.Keys(lc.global.CustomFields))
	env.TemplatedFields = slices.Sorted(maps.Keys(lc.global.TemplatedFields))
	out, err := oc.spec.Build(oc.cfg, env)
	if err != nil {
		return nil, nil, fmt.Errorf("output %s: %s", oc.spec.Name, redactor.Redact(err.Error()))
	}
	return out, delivery.WithRedactor(redactor), nil
}

func serve(args []string, _, stderr io.Writer) int {
	g, err := parseGlobalFlags("saker", args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if g.version {
		fmt.Fprintln(os.Stdout, "saker", version)
		return 0
	}
	if g.cpuProfile != "" {
		stop, err := startCPUProfile(g.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "saker: --cpuprofile:", err)
			return 1
		}
		defer stop()
	}
	cfg, err := loadConfig(g, os.Environ())
	if err != nil {
		if cfg != nil && cfg.result != nil {
			for _, w := range cfg.result.Warnings {
				fmt.Fprintln(stderr, "saker: warning:", w)
			}
		}
		fmt.Fprintf(stderr, "saker: invalid configuration:\n%v\n", err)
		return 1
	}
	log := newLogger(cfg.global, stderr)
	for _, w := range cfg.result.Warnings {
		log.Warn(w)
	}
	tuneGC(cfg, log)
	a, err := build(cfg, log)
	if err != nil {
		log.Error("start-up failed", "err", err)
		return 1
	}
	a.flags = g
	if err := a.run(); err != nil {
		log.Error("saker stopped with an error", "err", err)
		return 1
	}
	return 0
}

// run listens until SIGTERM/SIGINT, then drains: the listener closes first, the queues get
// shutdowntimeout to empty, and what is left is dead-lettered and counted.
func (a *app) run() error {
	g := a.cfg.global
	addr := net.JoinHostPort(g.ListenAddress, strconv.Itoa(g.ListenPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	// Signals are caught before the listener answers: a SIGHUP (reload) or SIGTERM sent as
	// soon as /ping answers must not meet the default action, which kills the process.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigc)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	srv := a.server.NewFastServer(a.log)
	var plain *http.Server
	a.engine.Start()
	errc := make(chan error, 2)
	if g.TLSServer.Deploy {
		tlsCfg, err := serverTLS(g.TLSServer)
		if err != nil {
			ln.Close()
			return err
		}
		go func() { errc <- srv.Serve(httpin.TLSListener(ln, tlsCfg)) }()
		if a.cfg.opensNoTLSPort() {
			plainAddr := net.JoinHostPort(g.ListenAddress, strconv.Itoa(g.TLSServer.NoTLSPort))
			pln, err := net.Listen("tcp", plainAddr)
			if err != nil {
				ln.Close()
				return fmt.Errorf("tlsserver.notlsport: listen on %s: %w", plainAddr, err)
			}
			plain = &http.Server{Handler: onlyPaths(a.server, g.TLSServer.NoTLSPaths), ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout: httpin.ReadTimeout, IdleTimeout: 2 * time.Minute}
			go func() { errc <- plain.Serve(pln) }()
			a.log.Info("plain-HTTP listener", "addr", pln.Addr().String(), "paths", g.TLSServer.NoTLSPaths)
		}
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	a.log.Info("saker listening", "addr", ln.Addr().String(), "tls", g.TLSServer.Deploy, "outputs", a.engine.Outputs(), "version", version)

	var serveErr error
wait:
	for {
		select {
		case <-hup:
			if a.flags != nil {
				_ = a.reload() // logged and counted; the running configuration stays on error
			}
		case s := <-sigc:
			a.log.Info("signal received, draining", "signal", s.String(), "shutdowntimeout", g.ShutdownTimeout)
			break wait
		case err := <-errc:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr = fmt.Errorf("serve: %w", err)
			}
			break wait
		}
	}
	a.server.SetDraining()
	for _, f := range a.beforeShutdown {
		f()
	}
	deadline := time.Now().Add(g.ShutdownTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := srv.ShutdownWithContext(ctx); err != nil {
		a.log.Warn("closing the listener", "err", err)
	}
	if plain != nil {
		if err := plain.Shutdown(ctx); err != nil {
			a.log.Warn("closing the plain-HTTP listener", "err", err)
		}
	}
	for _, stop := range a.stops {
		stop()
	}
	if lost := a.engine.Stop(time.Until(deadline)); lost > 0 {
		a.log.Warn("events still queued at shutdown were dead-lettered or dropped", "events", lost)
	}
	if kept := a.engine.Requeued(); kept > 0 {
		a.log.Info("events being delivered at shutdown stay stored for a later delivery", "events", kept)
	}
	a.closeBus()
	closeStatsd(a.statsd)
	a.log.Info("saker stopped")
	return serveErr
}

func serverTLS(t config.TLSServer) (*tls.Config, error) {
	caFile := ""
	if t.MutualTLS {
		caFile = t.CACertFile
	}
	return tlsconf.Server(tlsconf.Files{CertFile: t.CertFile, KeyFile: t.KeyFile, CACertFile: caFile,
		CertKey: "tlsserver.certfile", CAKey: "tlsserver.cacertfile"})
}

// opensNoTLSPort reports whether the plain-HTTP side port opens. falcosidekick opens it
// (2810, serving /ping) whenever TLS is deployed; saker keeps those defaults but opens it only
// when tlsserver.deploy is on and the user set tlsserver.notlsport or tlsserver.notlspaths,
// so turning TLS on never opens a plain-HTTP port nobody asked for. A falcosidekick
// configuration that names them (as its config_example.yaml does) gets the same port.
func (lc *loadedConfig) opensNoTLSPort() bool {
	t := lc.global.TLSServer
	asked := lc.result != nil && (lc.result.IsSet("tlsserver.notlsport") || lc.result.IsSet("tlsserver.notlspaths"))
	return t.Deploy && asked && t.NoTLSPort > 0 && len(t.NoTLSPaths) > 0
}

// onlyPaths serves the listed paths and answers 404 for the rest (the plain-HTTP side port
// for probes when the main listener is TLS).
func onlyPaths(h http.Handler, paths []string) http.Handler {
	allowed := map[string]bool{}
	for _, p := range paths {
		allowed[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[r.URL.Path] {
			httpin.WriteError(w, http.StatusNotFound, fmt.Sprintf("%s is only served over TLS", r.URL.Path))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// tuneGC trades memory the queues do not use for CPU: the default GOGC of 100 collected
// several times a second under load and showed as a tenth of the ingest profile. The heap
// may grow to five times the live data, under a soft memory limit sized from the queues
// (64 MiB plus 4 KiB per queued event; the UI store adds its share as it grows, see
// followStoreMemory) so memory stays bounded when an output hangs.
// GOGC and GOMEMLIMIT in the environment win.
func tuneGC(cfg *loadedConfig, log *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		limit := int64(64 << 20)
		for _, oc := range cfg.enabled() {
			limit += int64(oc.policy.QueueSize) * 4 << 10
		}
		gcBaseLimit = limit
		debug.SetMemoryLimit(limit)
		log.Debug("memory limit", "bytes", limit)
	}
}
