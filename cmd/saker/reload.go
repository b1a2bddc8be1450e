package main

import (
	"errors"
	"net/http"
	"os"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saker-dev/saker/config"
	"github.com/saker-dev/saker/engine/httpin"
)

// reloadMetrics count SIGHUP reloads.
type reloadMetrics struct {
	results  *prometheus.CounterVec
	lastGood prometheus.Gauge
}

func newReloadMetrics(reg prometheus.Registerer) *reloadMetrics {
	m := &reloadMetrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saker_config_reloads_total",
			Help: "Configuration reloads (SIGHUP) by result: success, or error when the new configuration was refused."}, []string{"result"}),
		lastGood: prometheus.NewGauge(prometheus.GaugeOpts{Name: "saker_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last configuration load that was applied (start-up or reload)."}),
	}
	reg.MustRegister(m.results, m.lastGood)
	m.lastGood.SetToCurrentTime()
	return m
}

// reload re-reads the configuration (file, environment, flags) and the rule files on SIGHUP.
// A configuration or rule file with an error is refused, every reason logged, and the
// running one keeps serving. A valid one swaps the audit rules and applies what can change
// while events flow — each output's minimumpriority, filter, dedup and ratelimit — and
// names, as warnings, the changes that need a restart (outputs added or removed, addresses
// and other output keys, top-level settings). Queues are untouched.
func (a *app) reload() error {
	a.reloadMu.Lock() // SIGHUP and POST /-/reload may come together
	defer a.reloadMu.Unlock()
	lc, err := loadConfig(a.flags, os.Environ())
	if err != nil {
		a.reloads.results.WithLabelValues("error").Inc()
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				a.log.Error("configuration reload refused: the running configuration keeps serving", "reason", e.Error())
			}
		} else {
			a.log.Error("configuration reload refused: the running configuration keeps serving", "reason", err.Error())
		}
		return err
	}
	for _, w := range lc.result.Warnings {
		a.log.Warn(w)
	}
	logRuleWarnings(a.log, lc.ruleWarnings)
	running := map[string]outputConfig{}
	for _, oc := range a.cfg.enabled() {
		running[oc.spec.Name] = oc
	}
	var applied []string
	next := map[string]bool{}
	for _, oc := range lc.enabled() {
		name := oc.spec.Name
		next[name] = true
		cur, ok := running[name]
		if !ok {
			a.log.Warn("configuration reload: a new output needs a restart to start", "output", name)
			continue
		}
		if !reflect.DeepEqual(cur.cfg, oc.cfg) || cur.policy.WithoutControl() != oc.policy.WithoutControl() {
			a.log.Warn("configuration reload: output settings other than minimumpriority, filter, dedup and ratelimit changed; they apply after a restart", "output", name)
		}
		if cur.policy.Control == oc.policy.Control {
			continue
		}
		if err := a.engine.Reconfigure(name, oc.prepared); err != nil {
			a.reloads.results.WithLabelValues("error").Inc()
			a.log.Error("configuration reload refused: the running configuration keeps serving", "reason", err.Error())
			return err
		}
		cur.policy.Control = oc.policy.Control
		applied = append(applied, name)
	}
	for name := range running {
		if !next[name] {
			a.log.Warn("configuration reload: removing an output needs a restart; it keeps delivering", "output", name)
		}
	}
	if !reflect.DeepEqual(a.cfg.global, lc.global) {
		a.log.Warn("configuration reload: top-level settings (listener, auth, TLS, enrichment, ...) changed; they apply after a restart")
	}
	if a.rules != nil {
		a.rules.Store(lc.ruleEngine)
	}
	a.reloads.results.WithLabelValues("success").Inc()
	a.reloads.lastGood.SetToCurrentTime()
	a.log.Info("configuration reloaded", "outputs_reconfigured", applied, "rules", len(lc.ruleEngine.Rules()), "at", time.Now().UTC().Format(time.RFC3339))
	return nil
}

// handleReload is POST /-/reload: the SIGHUP reload over HTTP, behind the inputs' auth.
// 200 when applied, 400 with every reason when the configuration was refused.
func (a *app) handleReload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpin.WriteError(w, http.StatusMethodNotAllowed, "POST /-/reload reloads the configuration")
		return
	}
	if a.flags == nil {
		httpin.WriteError(w, http.StatusServiceUnavailable, "reload is not available")
		return
	}
	if err := a.reload(); err != nil {
		httpin.WriteError(w, http.StatusBadRequest, "configuration refused, the running one keeps serving: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"reloaded"}` + "\n"))
}
