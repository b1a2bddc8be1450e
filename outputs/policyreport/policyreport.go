// Package policyreport records each event as a result of a Kubernetes PolicyReport
// (wgpolicyk8s.io/v1alpha2), as falcosidekick's PolicyReport output does: events of a
// namespace (k8s.ns.name, else ka.target.namespace) go to the PolicyReport
// falco-policy-report of that namespace, the others to the ClusterPolicyReport
// falco-cluster-policy-report. Each report keeps at most policyreport.maxevents results;
// the oldest goes first, or with policyreport.prunebypriority the oldest of the least severe.
//
// The report is read, extended and written back with its resourceVersion: a write that
// lost a race with another writer (another worker, another replica, Policy Reporter) gets
// 409 Conflict and is redone on a fresh read, so no result is overwritten.
package policyreport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sync"

	json "github.com/goccy/go-json"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/kubeapi"
)

// Config is the policyreport.* section.
type Config struct {
	Enabled         bool   `koanf:"enabled" doc:"write events into PolicyReports and a ClusterPolicyReport"`
	Kubeconfig      string `koanf:"kubeconfig" doc:"kubeconfig file, used only when saker does not run in a pod (its service account is used there)"`
	FalcoNamespace  string `koanf:"falconamespace" doc:"namespace of the report of events whose namespace does not exist; default: saker's own namespace (in a pod), else \"default\""`
	MaxEvents       int    `koanf:"maxevents" doc:"most results kept in one report; the oldest are pruned"`
	PruneByPriority bool   `koanf:"prunebypriority" doc:"prune the oldest of the least severe results first rather than the oldest"`
}

func defaults() *Config { return &Config{MaxEvents: 1000} }

// Validate names the key at fault.
func (c *Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	if c.MaxEvents < 1 {
		return fmt.Errorf("policyreport.maxevents must be at least 1, got %d", c.MaxEvents)
	}
	if c.FalcoNamespace != "" && !validNamespace(c.FalcoNamespace) {
		return fmt.Errorf("policyreport.falconamespace %q is not a namespace name (lower case letters, digits and '-', at most 63)", c.FalcoNamespace)
	}
	return nil
}

func init() {
	s := outputs.Define("policyreport", "policyreport", defaults,
		func(c *Config) bool { return c.Enabled },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "record events as results of Kubernetes PolicyReports (wgpolicyk8s.io/v1alpha2)"
	outputs.Register(s)
}

// The reports' names and what marks them as falcosidekick's: Policy Reporter and users'
// selectors know these, so saker keeps them.
const (
	policyReportName        = "falco-policy-report"
	clusterPolicyReportName = "falco-cluster-policy-report"
	apiVersion              = "wgpolicyk8s.io/v1alpha2"
	managedByLabel          = "app.kubernetes.io/managed-by"
	managedBy               = "falcosidekick"
)

// Output writes the reports.
type Output struct {
	cfg         *Config
	api         *kubeapi.Client
	log         *slog.Logger
	fallbackNS  string
	maxConflict int

	locksMu sync.Mutex
	locks   map[string]chan struct{}
}

// New builds the output: the service account's API server in a pod, else the kubeconfig.
func New(c *Config, env outputs.Env) (*Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var kc *kubeapi.Config
	var err error
	switch {
	case kubeapi.InCluster():
		if kc, err = kubeapi.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("policyreport: %w", err)
		}
	case c.Kubeconfig != "":
		if kc, err = kubeapi.FromKubeconfig(c.Kubeconfig); err != nil {
			return nil, fmt.Errorf("policyreport.kubeconfig: %w", err)
		}
	default:
		return nil, errors.New("policyreport: not running in a Kubernetes pod and policyreport.kubeconfig is empty: set it to a kubeconfig file")
	}
	api, err := kubeapi.New(kc, env)
	if err != nil {
		return nil, fmt.Errorf("policyreport: %w", err)
	}
	o := &Output{cfg: c, api: api, log: env.Logger(), fallbackNS: c.FalcoNamespace, maxConflict: 10,
		locks: map[string]chan struct{}{}}
	if o.fallbackNS == "" {
		// In a pod, kc.Namespace is the pod's (from the service account); outside, as in
		// falcosidekick, the kubeconfig context's namespace is not used.
		o.fallbackNS = "default"
		if kc.Source == kubeapi.InClusterSource && kc.Namespace != "" {
			o.fallbackNS = kc.Namespace
		}
	}
	return o, nil
}

// Name implements delivery.Output.
func (o *Output) Name() string { return "policyreport" }

// Send adds the event's result to its report.
func (o *Output) Send(ctx context.Context, ev *event.Event) error {
	r := newResult(ev)
	ns := namespaceOf(ev.OutputFields)
	if ns == "" {
		return o.upsert(ctx, "/apis/"+apiVersion+"/clusterpolicyreports", "ClusterPolicyReport", clusterPolicyReportName, "", r)
	}
	if !validNamespace(ns) {
		return o.toFallback(ctx, ns, r)
	}
	err := o.upsert(ctx, reportsPath(ns), "PolicyReport", policyReportName, ns, r)
	if errors.Is(err, errNoNamespace) {
		return o.toFallback(ctx, ns, r)
	}
	return err
}

// toFallback writes a result whose namespace does not exist into the fallback namespace's
// report, as falcosidekick does.
func (o *Output) toFallback(ctx context.Context, ns string, r result) error {
	o.log.Debug("policyreport: namespace not found, the fallback namespace's report is used", "namespace", ns, "fallback", o.fallbackNS)
	for i := range r.Resources {
		r.Resources[i].Namespace = o.fallbackNS
	}
	err := o.upsert(ctx, reportsPath(o.fallbackNS), "PolicyReport", policyReportName, o.fallbackNS, r)
	if errors.Is(err, errNoNamespace) {
		return delivery.Permanent(fmt.Errorf("policyreport: namespace %q not found and the fallback namespace %q (policyreport.falconamespace) does not exist either", ns, o.fallbackNS))
	}
	return err
}

func reportsPath(ns string) string {
	return "/apis/" + apiVersion + "/namespaces/" + ns + "/policyreports"
}

// errNoNamespace: the report's namespace does not exist.
var errNoNamespace = errors.New("namespace not found")

// lock serialises this process's writers of one report (they would only conflict), giving
// up when ctx ends.
func (o *Output) lock(ctx context.Context, key string) (func(), error) {
	o.locksMu.Lock()
	l, ok := o.locks[key]
	if !ok {
		l = make(chan struct{}, 1)
		o.locks[key] = l
	}
	o.locksMu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("policyreport: waiting for the report %s: %w", key, ctx.Err())
	}
}

// upsert reads the report (or starts one), adds r, prunes, and writes it back with the
// resourceVersion it read; a conflict (another writer was first, or created the report
// meanwhile) starts over on a fresh read.
func (o *Output) upsert(ctx context.Context, collection, kind, name, ns string, r result) error {
	unlock, err := o.lock(ctx, collection)
	if err != nil {
		return err
	}
	defer unlock()
	what := kind + " " + name
	if ns != "" {
		what += " in namespace " + ns
	}
	for range o.maxConflict {
		resp, err := o.api.Do(ctx, kubeapi.Request{Path: collection + "/" + name, Accept: []int{http.StatusNotFound}})
		if err != nil {
			return fmt.Errorf("policyreport: get %s: %w", what, err)
		}
		var rep report
		create := resp.Status == http.StatusNotFound
		if create {
			rep = newReport(kind, name, ns)
		} else if err := json.Unmarshal(resp.Body, &rep); err != nil {
			return fmt.Errorf("policyreport: decode %s: %w", what, err)
		}
		if rep.has(r) {
			return nil // written by an attempt whose answer was lost
		}
		err = rep.add(r)
		rep.results = prune(rep.results, o.cfg.MaxEvents, o.cfg.PruneByPriority)
		var body []byte
		if err == nil {
			body, err = rep.marshal()
		}
		if err != nil {
			return delivery.Permanent(fmt.Errorf("policyreport: encode %s: %w", what, err))
		}
		req := kubeapi.Request{Method: http.MethodPut, Path: collection + "/" + name, Body: body, Accept: []int{http.StatusConflict}}
		if create {
			req.Method, req.Path, req.Accept = http.MethodPost, collection, []int{http.StatusConflict, http.StatusNotFound}
		}
		resp, err = o.api.Do(ctx, req)
		if err != nil {
			return fmt.Errorf("policyreport: write %s: %w", what, err)
		}
		switch resp.Status {
		case http.StatusConflict:
			continue
		case http.StatusNotFound:
			if kubeapi.StatusOf(resp.Body).Details.Kind == "namespaces" {
				return errNoNamespace
			}
			return delivery.Permanent(fmt.Errorf("policyreport: create %s: not found: %s (is the PolicyReport CRD installed?)", what, kubeapi.StatusOf(resp.Body).Message))
		}
		if create {
			o.log.Info("policyreport: created", "kind", kind, "name", name, "namespace", ns)
		}
		return nil
	}
	return fmt.Errorf("policyreport: %s: still conflicting with other writers after %d attempts", what, o.maxConflict)
}

// namePattern is a Kubernetes namespace name (an RFC 1123 label).
var namePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func validNamespace(ns string) bool { return namePattern.MatchString(ns) }

// namespaceOf is the event's namespace: k8s.ns.name (syscall events in a pod), else
// ka.target.namespace (audit events); null, empty and Falco's "<NA>" are none.
func namespaceOf(fields map[string]any) string {
	for _, k := range []string{"k8s.ns.name", "ka.target.namespace"} {
		if v, ok := fields[k]; ok && v != nil {
			if s := event.FieldText(v); s != "" && s != "<NA>" {
				return s
			}
		}
	}
	return ""
}
