package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saker-dev/saker/config"
	"github.com/saker-dev/saker/engine/delivery"
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
			Help: "Configuration reloads (SIGHUP, POST /-/reload) by result: success, or error when the new configuration was refused."}, []string{"result"}),
		lastGood: prometheus.NewGauge(prometheus.GaugeOpts{Name: "saker_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last configuration load that was applied (start-up or reload)."}),
	}
	reg.MustRegister(m.results, m.lastGood)
	m.lastGood.SetToCurrentTime()
	return m
}

// outputChange is what a reload does to one output.
type outputChange struct {
	oc     outputConfig
	action string // add, rebuild or reconfigure
	out    delivery.Output
	redact delivery.AddOption
}

// reload re-reads the configuration (file, environment, flags) and the rule files, on SIGHUP
// or POST /-/reload. A configuration or rule file with an error is refused, every reason
// logged, and the running one keeps serving. A valid one is applied without losing an event:
// the audit rules are swapped; an output whose routing and noise control (minimumpriority,
// filter, dedup, ratelimit) changed is reconfigured in place; one with any other change
// (address, credentials, queue size, retry...) is rebuilt, keeping its queue and the events
// being retried; a new output starts; a removed one drains its queue, then stops. Top-level
// settings, the audit listener and the bus are read at start-up only: a change to them is
// named in a warning.
func (a *app) reload() error {
	a.reloadMu.Lock() // SIGHUP and POST /-/reload may come together
	defer a.reloadMu.Unlock()
	lc, err := loadConfig(a.flags, os.Environ())
	if err != nil {
		return a.refuse(err)
	}
	changes, removed, err := a.plan(lc)
	if err != nil {
		return a.refuse(err)
	}
	for _, w := range lc.result.Warnings {
		a.log.Warn(w)
	}
	logRuleWarnings(a.log, lc.ruleWarnings)
	a.warnRestartOnly(lc)

	// Applying can still fail where the bus is involved (an external NATS server refusing a
	// consumer update): that output keeps running as it was, and the next reload tries again.
	var failed []error
	done := map[string]string{}
	for _, c := range changes {
		name := c.oc.spec.Name
		var err error
		switch c.action {
		case "add":
			err = a.engine.AddPrepared(c.out, c.oc.prepared, c.redact)
		case "rebuild":
			err = a.engine.Replace(c.out, c.oc.prepared, c.redact)
		case "reconfigure":
			err = a.engine.Reconfigure(name, c.oc.prepared)
		}
		if err != nil {
			failed = append(failed, fmt.Errorf("output %s: %w", name, err))
			if cl, ok := c.out.(delivery.Closer); ok {
				_ = cl.Close()
			}
			lc.keep(name, a.cfg)
			continue
		}
		done[name] = c.action
	}
	for _, name := range removed {
		drained, err := a.engine.Remove(name)
		if err != nil {
			failed = append(failed, fmt.Errorf("output %s: %w", name, err))
			lc.keep(name, a.cfg)
			continue
		}
		done[name] = "remove"
		go func() {
			<-drained
			a.log.Info("removed output drained and stopped", "output", name)
		}()
	}
	if a.rules != nil {
		a.rules.Store(lc.ruleEngine)
	}
	a.cfg = lc
	tuneGC(lc, a.log) // the memory limit follows the queues
	if len(failed) > 0 {
		a.reloads.results.WithLabelValues("error").Inc()
		for _, e := range failed {
			a.log.Error("configuration reload: a change could not be applied; the output keeps running as it was", "reason", e.Error())
		}
		return errors.Join(failed...)
	}
	a.reloads.results.WithLabelValues("success").Inc()
	a.reloads.lastGood.SetToCurrentTime()
	a.log.Info("configuration reloaded", "outputs", done, "outputs_running", a.engine.Outputs(), "rules", len(lc.ruleEngine.Rules()))
	return nil
}

// refuse logs and counts a refused reload.
func (a *app) refuse(err error) error {
	a.reloads.results.WithLabelValues("error").Inc()
	var errs config.Errors
	if !errors.As(err, &errs) {
		errs = config.Errors{err}
	}
	for _, e := range errs {
		a.log.Error("configuration reload refused: the running configuration keeps serving", "reason", e.Error())
	}
	return err
}

// plan compares lc with the running configuration: what each output of lc needs (its new
// outputs built already) and which running outputs lc removes. Nothing is changed yet; an
// output that cannot be built refuses the whole reload.
func (a *app) plan(lc *loadedConfig) ([]outputChange, []string, error) {
	running := map[string]outputConfig{}
	for _, oc := range a.cfg.enabled() {
		running[oc.spec.Name] = oc
	}
	var changes []outputChange
	var errs config.Errors
	next := map[string]bool{}
	for _, oc := range lc.enabled() {
		name := oc.spec.Name
		next[name] = true
		cur, ok := running[name]
		c := outputChange{oc: oc}
		switch {
		case !ok && a.engine.Draining(name):
			errs = append(errs, fmt.Errorf("output %s is still draining the queue of its removal: reload again once it drained (/healthz)", name))
			continue
		case !ok:
			c.action = "add"
		case !reflect.DeepEqual(cur.cfg, oc.cfg) || cur.policy.WithoutControl() != oc.policy.WithoutControl():
			c.action = "rebuild"
		case cur.policy.Control != oc.policy.Control:
			c.action = "reconfigure"
		default:
			continue
		}
		if c.action != "reconfigure" {
			out, redact, err := lc.buildOutput(oc, a.log)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			c.out, c.redact = out, redact
		}
		changes = append(changes, c)
	}
	var removed []string
	for _, oc := range a.cfg.enabled() {
		if !next[oc.spec.Name] {
			removed = append(removed, oc.spec.Name)
		}
	}
	if len(errs) > 0 {
		for _, c := range changes {
			if cl, ok := c.out.(delivery.Closer); ok {
				_ = cl.Close()
			}
		}
		return nil, nil, errs
	}
	return changes, removed, nil
}

// keep puts back, in lc, the running configuration of output name (from cur), whose change
// could not be applied: the next reload sees the difference again.
func (lc *loadedConfig) keep(name string, cur *loadedConfig) {
	for i := range lc.outputs {
		if lc.outputs[i].spec.Name != name {
			continue
		}
		for _, oc := range cur.outputs {
			if oc.spec.Name == name {
				lc.outputs[i] = oc
			}
		}
	}
}

// warnRestartOnly names the changes of lc, against the configuration saker started with,
// that apply only after a restart.
func (a *app) warnRestartOnly(lc *loadedConfig) {
	b := a.boot
	for _, s := range []struct {
		what    string
		was, is any
	}{
		{"top-level settings (listener, auth, TLS, enrichment, metrics, dead letter...)", b.global, lc.global},
		{"the k8saudit section (audit listener, followed files)", b.audit, lc.audit},
		{"the bus (spool, bus.jetstream)", []any{b.spool, b.external}, []any{lc.spool, lc.external}},
		{"the ui section (web UI, its store, listener and credentials)", b.ui, lc.ui},
	} {
		if !reflect.DeepEqual(s.was, s.is) {
			a.log.Warn("configuration reload: " + s.what + " changed; they apply after a restart")
		}
	}
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
