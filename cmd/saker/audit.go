package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/saker-dev/saker/config"
	"github.com/saker-dev/saker/engine/audit"
	"github.com/saker-dev/saker/engine/httpin"
	"github.com/saker-dev/saker/engine/rules"
	"github.com/saker-dev/saker/engine/tlsconf"
)

// auditConfig is the k8saudit section: the audit webhook receiver and log followers.
type auditConfig struct {
	ListenAddress string   `koanf:"listenaddress" doc:"address of the optional dedicated audit listener"`
	ListenPort    int      `koanf:"listenport" doc:"port of a dedicated listener serving only POST /k8s-audit (e.g. behind a NodePort); 0: only the main listener"`
	CertFile      string   `koanf:"certfile" doc:"serve the dedicated listener over TLS with this certificate (default with tlsserver.deploy: tlsserver.certfile)"`
	KeyFile       string   `koanf:"keyfile" doc:"key of certfile"`
	CACertFile    string   `koanf:"cacertfile" doc:"require client certificates signed by this CA on the dedicated listener (default with tlsserver.mutualtls: tlsserver.cacertfile)"`
	MaxBatchSize  int64    `koanf:"maxbatchsize" doc:"largest audit request body in bytes (413 beyond); 12 MiB, as the k8saudit plugin"`
	MaxEventSize  int      `koanf:"maxeventsize" doc:"largest single audit event in bytes; larger events are skipped and counted"`
	Files         []string `koanf:"files" doc:"audit log files (kube-apiserver --audit-log-path) followed like tail -F"`
}

// rulesConfig is the rules section.
type rulesConfig struct {
	Defaults bool     `koanf:"defaults" doc:"load the embedded upstream k8s_audit_rules.yaml first"`
	Extras   bool     `koanf:"extras" doc:"load saker's rules pack (docs/rules-extras.md) right after the defaults: server-side apply, ephemeral containers, bootstrap noise"`
	Files    []string `koanf:"files" doc:"rule files or directories (*.yaml) loaded after the defaults, in order"`
	Matching string   `koanf:"matching" doc:"first (only the first matching rule alerts, as Falco) or all"`
	Hostname string   `koanf:"hostname" doc:"hostname put in audit alerts; empty: the machine's"`
}

func defaultAuditConfig() *auditConfig {
	return &auditConfig{MaxBatchSize: audit.DefaultMaxBatchSize, MaxEventSize: audit.DefaultMaxEventSize}
}

func defaultRulesConfig() *rulesConfig { return &rulesConfig{Defaults: true, Matching: "first"} }

// Validate names the key at fault.
func (c *auditConfig) Validate() error {
	switch {
	case c.ListenPort < 0 || c.ListenPort > 65535:
		return fmt.Errorf("k8saudit.listenport must be 0-65535, got %d", c.ListenPort)
	case c.MaxBatchSize <= 0:
		return fmt.Errorf("k8saudit.maxbatchsize must be positive, got %d", c.MaxBatchSize)
	case c.MaxEventSize <= 0:
		return fmt.Errorf("k8saudit.maxeventsize must be positive, got %d", c.MaxEventSize)
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("k8saudit.certfile and k8saudit.keyfile must be set together")
	}
	return nil
}

// Validate names the key at fault.
func (c *rulesConfig) Validate() error {
	if _, err := rules.ParseMatching(c.Matching); err != nil {
		return fmt.Errorf("rules.matching: %w", err)
	}
	if c.Extras && !c.Defaults {
		return errors.New("rules.extras needs rules.defaults: the pack overrides rules of the embedded k8s_audit_rules.yaml")
	}
	if !c.Defaults && len(c.Files) == 0 {
		return errors.New("rules.defaults is false and rules.files is empty: no rules to evaluate audit events with")
	}
	return nil
}

func init() {
	startHooks = append(startHooks, startAudit)
	commands["rules check"] = command{summary: "load rule files (after the embedded defaults) and list what loaded", run: rulesCheck}
}

// loadRules compiles the configured rules.
func loadRules(rc *rulesConfig) (*rules.Engine, []rules.Warning, error) {
	files, err := ruleFilesFrom(rc.Defaults, rc.Extras, rc.Files)
	if err != nil {
		return nil, nil, err
	}
	m, err := rules.ParseMatching(rc.Matching)
	if err != nil {
		return nil, nil, fmt.Errorf("rules.matching: %w", err)
	}
	return rules.Load(audit.NewSource(), files, rules.Options{Matching: m, Hostname: rc.Hostname})
}

// startAudit mounts POST /k8s-audit, opens the dedicated listener and follows log files,
// evaluating with the rules loadConfig compiled (a.rules, which a reload swaps).
func startAudit(a *app) error {
	ac, eng := a.cfg.audit, a.cfg.ruleEngine
	logRuleWarnings(a.log, a.cfg.ruleWarnings)
	log := a.log.With("input", "k8saudit")
	h := audit.NewHandler(eng, a.pipeline, audit.Limits{MaxBatchSize: ac.MaxBatchSize, MaxEventSize: ac.MaxEventSize}, log)
	a.rules = h.Rules()
	a.server.HandleRoute("/k8s-audit", h, httpin.Route{MaxBody: ac.MaxBatchSize, LimitKey: "k8saudit.maxbatchsize",
		Source: "k8saudit", OnReject: func() { h.Stats().Rejected.Add(1) }})
	stats := []*audit.Stats{h.Stats()}
	log.Info("audit rules loaded", "rules", len(eng.Rules()), "matching", a.cfg.rules.Matching)

	if ac.ListenPort > 0 {
		if err := startAuditListener(a, h, log); err != nil {
			return err
		}
	}
	if len(ac.Files) > 0 {
		f := &audit.Follower{Rules: a.rules, Submitter: a.pipeline, MaxEventSize: ac.MaxEventSize, Log: log}
		stats = append(stats, &f.Stats)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Run(ctx, ac.Files); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("following audit logs", "err", err)
			}
		}()
		a.stops = append(a.stops, func() { cancel(); wg.Wait() })
	}
	return a.metrics.CounterFunc("saker_k8saudit_events_total",
		"Kubernetes audit events by status: received, alert, payload_rejected, payload_unavailable (503: an alert could not be stored), skipped_<reason>.", "status",
		func() map[string]uint64 {
			out := map[string]uint64{}
			for _, s := range stats {
				snap := s.Snapshot()
				out["received"] += snap.Received
				out["alert"] += snap.Alerts
				out["payload_rejected"] += snap.Rejected
				out["payload_unavailable"] += snap.Unavailable
				for reason, n := range snap.Skipped {
					out["skipped_"+reason] += n
				}
			}
			return out
		})
}

// logRuleWarnings logs what loading the rules reported.
func logRuleWarnings(log *slog.Logger, warnings []rules.Warning) {
	for _, w := range warnings {
		log.Warn("rules", "warning", w.String())
	}
}

// startAuditListener opens the dedicated listener (k8saudit.listenport), which serves only
// POST /k8s-audit with the main listener's body limits, and under the same TLS and
// client-certificate rules (see auditTLS).
func startAuditListener(a *app, h http.Handler, log *slog.Logger) error {
	ac := a.cfg.audit
	tlsCfg, err := auditTLS(ac, a.cfg.global.TLSServer)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/k8s-audit", h)
	addr := net.JoinHostPort(ac.ListenAddress, strconv.Itoa(ac.ListenPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("k8saudit listener on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: a.server.LimitBodies(mux), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: httpin.ReadTimeout, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	if tlsCfg != nil {
		ln = httpin.TLSListener(ln, tlsCfg)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("audit listener stopped", "err", err)
		}
	}()
	mutual := tlsCfg != nil && tlsCfg.ClientAuth == tls.RequireAndVerifyClientCert
	log.Info("audit listener", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "mutualtls", mutual)
	a.stops = append(a.stops, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return nil
}

// auditTLS is the TLS configuration of the dedicated audit listener (nil: plain HTTP). It
// follows the main listener: with tlsserver.deploy it serves TLS (with k8saudit.certfile, or
// else tlsserver's certificate), and with tlsserver.mutualtls it requires a client
// certificate signed by k8saudit.cacertfile, or else tlsserver.cacertfile, so the audit port
// is never a way around the main listener's mutual TLS. Without tlsserver.deploy,
// k8saudit.certfile and k8saudit.cacertfile alone turn TLS and client certificates on.
func auditTLS(ac *auditConfig, ts config.TLSServer) (*tls.Config, error) {
	certFile, keyFile, certKey := ac.CertFile, ac.KeyFile, "k8saudit.certfile"
	if certFile == "" && ts.Deploy {
		certFile, keyFile, certKey = ts.CertFile, ts.KeyFile, "tlsserver.certfile"
	}
	if err := auditTLSError(ac, ts); err != nil {
		return nil, err
	}
	if certFile == "" {
		return nil, nil
	}
	caFile, caKey := auditClientCA(ac, ts)
	cfg, err := tlsconf.Server(tlsconf.Files{CertFile: certFile, KeyFile: keyFile, CACertFile: caFile, CertKey: certKey, CAKey: caKey})
	if err != nil {
		return nil, fmt.Errorf("audit listener: %w", err)
	}
	return cfg, nil
}

// auditTLSError reports a client CA for the dedicated audit listener that could not be
// enforced because the listener would serve plain HTTP.
func auditTLSError(ac *auditConfig, ts config.TLSServer) error {
	if ac.ListenPort > 0 && ac.CACertFile != "" && ac.CertFile == "" && !ts.Deploy {
		return errors.New("k8saudit.cacertfile needs TLS on the audit listener: set k8saudit.certfile and k8saudit.keyfile, or tlsserver.deploy")
	}
	return nil
}

// auditClientCA is the CA the dedicated audit listener checks client certificates against,
// and its key ("" when none is configured).
func auditClientCA(ac *auditConfig, ts config.TLSServer) (file, key string) {
	switch {
	case ac.CACertFile != "":
		return ac.CACertFile, "k8saudit.cacertfile"
	case ts.Deploy && ts.MutualTLS:
		return ts.CACertFile, "tlsserver.cacertfile"
	}
	return "", ""
}

// auditListenerWarnings reports, for `config check` and start-up, a dedicated audit
// listener that serves TLS but lets any client post: audit events raise alerts, so who may
// send them matters as much as on the main listener.
func auditListenerWarnings(ac *auditConfig, ts config.TLSServer) []string {
	if ac.ListenPort == 0 {
		if ac.CertFile != "" || ac.CACertFile != "" {
			return []string{"k8saudit.certfile/k8saudit.cacertfile are set but k8saudit.listenport is 0 (no dedicated audit listener): they are ignored"}
		}
		return nil
	}
	if ca, _ := auditClientCA(ac, ts); ac.CertFile != "" && ca == "" {
		return []string{"k8saudit.certfile is set without a client CA (k8saudit.cacertfile, or tlsserver.mutualtls with tlsserver.cacertfile): " +
			"the dedicated audit listener accepts audit events from any client that reaches it"}
	}
	return nil
}

// rulesCheck is `saker rules check [-r FILE]... [--no-defaults] [--extras] [--rule-matching first|all]`.
func rulesCheck(args []string, stdout, stderr io.Writer) int {
	rc := *defaultRulesConfig()
	var files stringList
	fs := flag.NewFlagSet("rules check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&files, "r", "rules file or directory, loaded after the defaults (repeatable)")
	noDefaults := fs.Bool("no-defaults", false, "do not load the embedded upstream k8s_audit_rules.yaml")
	fs.BoolVar(&rc.Extras, "extras", false, extrasUsage)
	fs.StringVar(&rc.Matching, "rule-matching", rc.Matching, "first or all")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rc.Files = append(files, fs.Args()...)
	rc.Defaults = !*noDefaults
	eng, warnings, err := loadRules(&rc)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w.String())
	}
	if err != nil {
		fmt.Fprintln(stderr, "rules are invalid:", err)
		return 1
	}
	enabled := 0
	for _, r := range eng.Rules() {
		state := "enabled"
		if !r.Enabled {
			state = "disabled"
		} else {
			enabled++
		}
		fmt.Fprintf(stdout, "%-9s %-13s %-9s %s (%s:%d)\n", state, r.Priority, r.Source, r.Name, r.File, r.Line)
	}
	fmt.Fprintf(stdout, "# %d rules loaded, %d enabled, %d warnings\n", len(eng.Rules()), enabled, len(warnings))
	return 0
}
