// Package charts holds the tests of the Helm chart in charts/saker (make chart-test): helm lint
// and template of every ci/*-values.yaml case, a server-side dry run of everything they render
// on a real kube-apiserver + etcd (shared by all the steps), the PrometheusRule through
// promtool, every Grafana dashboard query against a real Prometheus scraping a saker that has
// handled events, and docs/k3s.md's audit policy, webhook kubeconfig and k3s flags on that
// same kube-apiserver. The chart's README table of values is checked by TestReadme.
package charts

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"go.yaml.in/yaml/v3"
)

const chartDir = "saker"

var sakerBin string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if !testing.Short() {
			dir, err := os.MkdirTemp("", "saker-chart-test")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			sakerBin = filepath.Join(dir, "saker")
			build := exec.Command("go", "build", "-pgo=off", "-o", sakerBin, "../cmd/saker")
			build.Stdout, build.Stderr = os.Stderr, os.Stderr
			if err := build.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "building saker:", err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// run executes a command, failing the test with its output when it fails.
func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	out, err := runErr(stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	return cmd.CombinedOutput()
}

// chartCase is the defaults ("") or a ci/*-values.yaml file.
type chartCase struct{ name, file string }

func (c chartCase) args() []string {
	if c.file == "" {
		return nil
	}
	return []string{"-f", c.file}
}

func cases(t *testing.T) []chartCase {
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := []chartCase{{name: "defaults"}}
	for _, f := range files {
		out = append(out, chartCase{name: filepath.Base(f), file: f})
	}
	// chart-testing's convention, and what the issue asks for: defaults, UI + PVC, JetStream
	// with replicas, TLS + auth from secrets, monitoring.
	if len(out) < 6 {
		t.Fatalf("want at least 5 ci/*-values.yaml cases, found %d", len(files))
	}
	return out
}

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }

func dig(v any, path ...any) any {
	if o, ok := v.(object); ok {
		v = map[string]any(o)
	}
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

func list(v any) []any { l, _ := v.([]any); return l }

func render(t *testing.T, helm string, c chartCase, extra ...string) ([]byte, []object) {
	t.Helper()
	args := append([]string{"template", "t", chartDir, "--namespace", "saker", "--api-versions", "monitoring.coreos.com/v1"}, c.args()...)
	out := run(t, nil, helm, append(args, extra...)...)
	var objs []object
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var o map[string]any // not object: yaml.v3 would give nested maps that type too
		err := dec.Decode(&o)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: rendered YAML: %v", c.name, err)
		}
		if o != nil {
			objs = append(objs, object(o))
		}
	}
	return out, objs
}

func find(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// workload is the Deployment or StatefulSet running saker.
func workload(t *testing.T, objs []object) object {
	t.Helper()
	w := append(find(objs, "Deployment"), find(objs, "StatefulSet")...)
	if len(w) != 1 {
		t.Fatalf("want one Deployment or StatefulSet, got %d", len(w))
	}
	return w[0]
}

func containerEnv(w object) map[string]string {
	env := map[string]string{}
	for _, e := range list(dig(w, "spec", "template", "spec", "containers", 0, "env")) {
		env[str(dig(e, "name"))] = str(dig(e, "value"))
	}
	return env
}

// TestChart renders every case and checks it on one real kube-apiserver, promtool, a real
// Prometheus and the k3s guide.
func TestChart(t *testing.T) {
	helm := testpeers.Bin(t, "helm")
	kubectl := testpeers.Bin(t, "kubectl")
	promtool := testpeers.Bin(t, "promtool")
	prometheus := testpeers.Bin(t, "prometheus")
	testpeers.Need(t, "kube-apiserver")
	all := cases(t)

	rendered := map[string][]object{}
	raw := map[string][]byte{}
	for _, c := range all {
		t.Run("lint/"+c.name, func(t *testing.T) {
			run(t, nil, helm, append([]string{"lint", "--strict", chartDir}, c.args()...)...)
		})
		raw[c.name], rendered[c.name] = render(t, helm, c)
	}

	t.Run("secure defaults", func(t *testing.T) { checkSecurity(t, rendered) })
	t.Run("cases", func(t *testing.T) { checkCases(t, helm, rendered) })
	t.Run("environment names", func(t *testing.T) { checkEnvNames(t, rendered) })
	for _, name := range []string{"defaults", "persistence-ui-values.yaml"} {
		t.Run("the pod's configuration starts saker/"+name, func(t *testing.T) { checkStarts(t, rendered[name]) })
	}

	// One saker receives the guide's audit webhook and the events the dashboard shows.
	sink := newSink(t)
	auditPort := testpeers.FreePort(t)
	// and a failing Alertmanager output, so that the failure, retry and latency panels have data
	saker := startSaker(t, "WEBHOOK_ADDRESS="+sink.srv.URL+"/", "ALERTMANAGER_HOSTPORT=http://127.0.0.1:9", fmt.Sprintf("K8SAUDIT_LISTENPORT=%d", auditPort),
		"K8SAUDIT_LISTENADDRESS=127.0.0.1", "RETRY_INITIAL=20ms", "RETRY_MAX=100ms")

	guide := readGuide(t)
	cl := startCluster(t, kubectl, guide, fmt.Sprintf("127.0.0.1:%d", auditPort))

	t.Run("k3s guide: aws-creds alert through the audit webhook", func(t *testing.T) {
		cmd := guide.command(t, "kubectl create configmap aws-creds")
		cl.kubectl(t, nil, cmd[1:]...)
		const rule = "Create/Modify Configmap With Private Credentials"
		sink.wait(t, 60*time.Second, func(a alert) bool {
			return a.Rule == rule && a.Source == "k8s_audit" && a.OutputFields["ka.req.configmap.name"] == "aws-creds"
		}, "the guide's kubectl create configmap aws-creds raising %q at the webhook output", rule)
	})

	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: %[2]s.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: %[1]s, plural: %[2]s, singular: %[3]s}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`
	// stand-ins for the prometheus-operator CRDs: the kinds exist, their schema is not checked
	for _, k := range [][3]string{{"ServiceMonitor", "servicemonitors", "servicemonitor"}, {"PrometheusRule", "prometheusrules", "prometheusrule"}} {
		cl.kubectl(t, []byte(fmt.Sprintf(crd, k[0], k[1], k[2])), "apply", "-f", "-")
	}
	cl.kubectl(t, nil, "create", "namespace", "saker")
	// a real cluster's controller-manager creates the namespace's default ServiceAccount
	cl.kubectl(t, nil, "create", "serviceaccount", "default", "-n", "saker")
	for _, k := range []string{"servicemonitors", "prometheusrules"} {
		testpeers.Eventually(t, 30*time.Second, func() bool {
			_, err := runErr(nil, kubectl, "--kubeconfig", cl.kubeconfig, "get", k+".monitoring.coreos.com", "-n", "saker")
			return err == nil
		}, "CRD %s served", k)
	}
	for _, c := range all {
		t.Run("dry-run=server/"+c.name, func(t *testing.T) {
			var sas []object
			for _, o := range rendered[c.name] {
				if o.kind() == "ServiceAccount" {
					sas = append(sas, o)
				}
			}
			if len(sas) > 0 { // a Pod's admission looks its ServiceAccount up
				b, err := yamlStream(sas)
				if err != nil {
					t.Fatal(err)
				}
				cl.kubectl(t, b, "apply", "-n", "saker", "-f", "-")
			}
			cl.kubectl(t, raw[c.name], "apply", "--dry-run=server", "-n", "saker", "-f", "-")
		})
	}

	t.Run("k3s guide: helm install", func(t *testing.T) {
		cmd := guide.command(t, "helm install saker ./charts/saker")
		// the guide runs from the repository root; the namespace exists already here
		args := slices.DeleteFunc(cmd[1:], func(a string) bool { return a == "--create-namespace" })
		args[2] = chartDir
		out := string(run(t, nil, helm, append(args, "--kubeconfig", cl.kubeconfig, "--dry-run=server")...))
		if !strings.Contains(out, "SLACK_WEBHOOKURL") || !strings.Contains(out, "name: saker-audit") {
			t.Errorf("the guide's helm install renders no Slack output or no saker-audit Service:\n%s", out)
		}
	})

	t.Run("NOTES: the apiserver's webhook kubeconfig", func(t *testing.T) {
		checkNotes(t, helm, cl)
	})

	t.Run("promtool check rules", func(t *testing.T) {
		rules := find(rendered["monitoring-values.yaml"], "PrometheusRule")
		if len(rules) != 1 {
			t.Fatalf("monitoring-values.yaml renders %d PrometheusRules, want 1", len(rules))
		}
		b, err := yaml.Marshal(map[string]any{"groups": dig(rules[0], "spec", "groups")})
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "rules.yaml")
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out := run(t, nil, promtool, "check", "rules", f)
		if !bytes.Contains(out, []byte("SUCCESS")) {
			t.Fatalf("promtool: %s", out)
		}
		names := map[string]bool{}
		for _, r := range list(dig(rules[0], "spec", "groups", 0, "rules")) {
			names[str(dig(r, "alert"))] = true
		}
		for _, want := range []string{"SakerAbsent", "SakerOutputFailing", "SakerDeadLettering", "SakerQueueNearlyFull", "FalcoAlertsCritical", "FalcoAlertsError"} {
			if !names[want] {
				t.Errorf("PrometheusRule lacks alert %s (has %v)", want, names)
			}
		}
		if names["FalcoAlertsWarning"] {
			t.Errorf("prometheusRules.alerts.warning.enabled=false in monitoring-values.yaml, yet FalcoAlertsWarning is rendered")
		}
	})

	t.Run("dashboard queries on a real Prometheus", func(t *testing.T) {
		checkDashboard(t, prometheus, saker, sink)
	})
}

func yamlStream(objs []object) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	for _, o := range objs {
		if err := enc.Encode(o); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), enc.Close()
}

// checkSecurity holds every case to the secure defaults.
func checkSecurity(t *testing.T, rendered map[string][]object) {
	for name, objs := range rendered {
		w := workload(t, objs)
		pod := dig(w, "spec", "template", "spec")
		if dig(pod, "automountServiceAccountToken") != false {
			t.Errorf("%s: the pod mounts a ServiceAccount token saker does not need", name)
		}
		if dig(pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
			t.Errorf("%s: pod seccompProfile is not RuntimeDefault", name)
		}
		if ann := str(dig(w, "spec", "template", "metadata", "annotations", "checksum/config")); len(ann) != 64 {
			t.Errorf("%s: no checksum/config annotation (%q)", name, ann)
		}
		for _, c := range append(list(dig(pod, "containers")), list(dig(pod, "initContainers"))...) {
			sc := dig(c, "securityContext")
			for path, want := range map[string]any{"runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false} {
				if got := dig(sc, path); got != want {
					t.Errorf("%s: container %s securityContext.%s = %v, want %v", name, str(dig(c, "name")), path, got, want)
				}
			}
			if !slices.Equal(list(dig(sc, "capabilities", "drop")), []any{"ALL"}) {
				t.Errorf("%s: container %s does not drop every capability", name, str(dig(c, "name")))
			}
			if u, _ := dig(sc, "runAsUser").(int); u == 0 {
				t.Errorf("%s: container %s runs as user 0", name, str(dig(c, "name")))
			}
			for _, k := range []string{"requests", "limits"} {
				if dig(c, "resources", k) == nil {
					t.Errorf("%s: container %s has no resource %s", name, str(dig(c, "name")), k)
				}
			}
			for _, p := range []string{"livenessProbe", "readinessProbe"} {
				if dig(c, p) == nil {
					t.Errorf("%s: container %s has no %s", name, str(dig(c, "name")), p)
				}
			}
		}
		if r := dig(pod, "containers", 0, "readinessProbe", "httpGet", "path"); r != nil && r != "/healthz" {
			t.Errorf("%s: readiness probe on %v, want /healthz", name, r)
		}
	}
}

// checkCases checks what each ci case is for.
func checkCases(t *testing.T, helm string, rendered map[string][]object) {
	def := rendered["defaults"]
	if w := workload(t, def); w.kind() != "Deployment" || containerEnv(w)["SPOOL_PATH"] == "" {
		t.Errorf("defaults: want a Deployment with the spool on (SPOOL_PATH), got %s env %v", w.kind(), containerEnv(w))
	}
	var audit, ui bool
	for _, s := range find(def, "Service") {
		for _, p := range list(dig(s, "spec", "ports")) {
			if str(dig(p, "name")) == "audit" && dig(s, "spec", "type") == "NodePort" && dig(p, "nodePort") == 32765 {
				audit = true
			}
			if dig(p, "port") == 2802 {
				ui = true
			}
		}
	}
	if !audit || !ui {
		t.Errorf("defaults: audit webhook on NodePort 32765: %v, UI Service port 2802: %v", audit, ui)
	}
	if len(find(def, "PodDisruptionBudget")) != 0 || len(find(def, "NetworkPolicy")) != 0 {
		t.Errorf("defaults: one replica needs no PodDisruptionBudget, and the NetworkPolicy is optional")
	}
	if s := find(def, "Secret"); len(s) != 1 || str(dig(s[0], "data", "UI_AUTH_BASIC_PASSWORD")) == "" {
		t.Errorf("defaults: the UI must not be open: want a generated UI_AUTH_BASIC_PASSWORD in the chart's Secret")
	}

	p := rendered["persistence-ui-values.yaml"]
	w := workload(t, p)
	if w.kind() != "StatefulSet" || dig(w, "spec", "volumeClaimTemplates", 0, "spec", "storageClassName") != "local-path" {
		t.Errorf("persistence-ui: want a StatefulSet with a local-path claim, got %s", w.kind())
	}
	if env := containerEnv(w); env["UI_STORAGE_PATH"] == "" || env["RULES_FILES"] == "" {
		t.Errorf("persistence-ui: UI store and rule files not configured: %v", env)
	}
	if len(find(p, "Ingress")) != 1 || len(find(p, "ConfigMap")) != 1 {
		t.Errorf("persistence-ui: want the UI ingress and the rules ConfigMap")
	}

	j := rendered["jetstream-values.yaml"]
	w = workload(t, j)
	env := containerEnv(w)
	if dig(w, "spec", "replicas") != 3 || env["BUS_JETSTREAM_URL"] == "" || env["SPOOL_PATH"] != "" || len(find(j, "PodDisruptionBudget")) != 1 {
		t.Errorf("jetstream: want 3 replicas on JetStream without the spool and with a PodDisruptionBudget: %v", env)
	}

	tl := rendered["tls-auth-values.yaml"]
	w = workload(t, tl)
	env = containerEnv(w)
	if env["TLSSERVER_DEPLOY"] != "true" || env["AUTH_TOKENFILE"] == "" || len(find(tl, "NetworkPolicy")) != 1 {
		t.Errorf("tls-auth: want TLS, a token file and a NetworkPolicy: %v", env)
	}
	if dig(w, "spec", "template", "spec", "containers", 0, "readinessProbe", "httpGet", "port") != "notls" {
		t.Errorf("tls-auth: with mutual TLS the probes must use the plain notls port")
	}

	m := rendered["monitoring-values.yaml"]
	if len(find(m, "ServiceMonitor")) != 1 || len(find(m, "PrometheusRule")) != 1 {
		t.Errorf("monitoring: want a ServiceMonitor and a PrometheusRule")
	}
	cms := find(m, "ConfigMap")
	if len(cms) != 1 || dig(cms[0], "metadata", "labels", "grafana_dashboard") != "1" || !json.Valid([]byte(str(dig(cms[0], "data", "saker.json")))) {
		t.Errorf("monitoring: want the dashboard ConfigMap with the sidecar label grafana_dashboard=1 and valid JSON")
	}

	// config.* maps to falcosidekick's env names in the chart's Secret; a change rolls the pods.
	_, a := render(t, helm, chartCase{name: "defaults"}, "--set", "config.slack.webhookurl=https://hooks.example/x", "--set", "ui.auth.password=p")
	_, b := render(t, helm, chartCase{name: "defaults"}, "--set", "config.slack.webhookurl=https://hooks.example/y", "--set", "ui.auth.password=p")
	sa := find(a, "Secret")[0]
	if v := str(dig(sa, "data", "SLACK_WEBHOOKURL")); v != "aHR0cHM6Ly9ob29rcy5leGFtcGxlL3g=" {
		t.Errorf("config.slack.webhookurl: Secret SLACK_WEBHOOKURL = %q", v)
	}
	ca := dig(workload(t, a), "spec", "template", "metadata", "annotations", "checksum/config")
	cb := dig(workload(t, b), "spec", "template", "metadata", "annotations", "checksum/config")
	if ca == cb {
		t.Errorf("checksum/config does not change with the config")
	}
	// the ServiceMonitor selects one Service, also with the StatefulSet's headless one
	_, sm := render(t, helm, chartCase{name: "defaults"}, "--set", "serviceMonitor.enabled=true", "--set", "persistence.enabled=true")
	sel, _ := dig(find(sm, "ServiceMonitor")[0], "spec", "selector", "matchLabels").(map[string]any)
	var selected []string
	for _, svc := range find(sm, "Service") {
		labels, _ := dig(svc, "metadata", "labels").(map[string]any)
		match := len(sel) > 0
		for k, v := range sel {
			match = match && labels[k] == v
		}
		if match {
			selected = append(selected, str(dig(svc, "metadata", "name")))
		}
	}
	if len(selected) != 1 {
		t.Errorf("the ServiceMonitor selects Services %v, want the main one only (one scrape per pod)", selected)
	}
	// values saker would refuse fail at render time, naming the key
	out, err := runErr(nil, helm, "template", "t", chartDir, "--set", "tls.enabled=true")
	if err == nil || !strings.Contains(string(out), "tls.existingSecret") {
		t.Errorf("tls.enabled without a secret: want an error naming tls.existingSecret, got %v: %s", err, out)
	}
}

// checkEnvNames: every variable the chart sets is a key `saker config docs` documents (the UI's
// keys once the ui section exists), so a typo cannot silently configure nothing.
func checkEnvNames(t *testing.T, rendered map[string][]object) {
	if sakerBin == "" {
		t.Skip("saker not built")
	}
	docs := string(run(t, nil, sakerBin, "config", "docs"))
	hasUI := hasUIKeys(t)
	for name, objs := range rendered {
		keys := map[string]bool{}
		for k := range containerEnv(workload(t, objs)) {
			keys[k] = true
		}
		for _, s := range find(objs, "Secret") {
			data, _ := dig(s, "data").(map[string]any)
			for k := range data {
				keys[k] = true
			}
		}
		for k := range keys {
			if strings.HasPrefix(k, "UI_") && !hasUI {
				continue
			}
			if !strings.Contains(docs, "`"+k+"`") {
				t.Errorf("%s: environment variable %s is no key of saker config docs", name, k)
			}
		}
	}
}

// checkStarts runs bin/saker as the rendered pod would (its environment, the chart's Secret,
// the image's config file, the rules ConfigMap), with the pod's paths moved to a temporary
// directory and its ports to free ones: it must come up healthy, its spool on the data
// volume, and take an audit event on the dedicated audit port.
func checkStarts(t *testing.T, objs []object) {
	if sakerBin == "" {
		t.Skip("saker not built")
	}
	dir := t.TempDir()
	paths := strings.NewReplacer("/var/lib/saker", filepath.Join(dir, "data"), "/etc/saker/rules", filepath.Join(dir, "rules"))
	ports := map[string]int{"LISTENPORT": testpeers.FreePort(t), "K8SAUDIT_LISTENPORT": testpeers.FreePort(t), "UI_LISTENPORT": testpeers.FreePort(t)}
	env := []string{"LISTENADDRESS=127.0.0.1", "K8SAUDIT_LISTENADDRESS=127.0.0.1", "RULES_HOSTNAME=node-1", "STDOUT_ENABLED=false"}
	for k, v := range containerEnv(workload(t, objs)) {
		if p, ok := ports[k]; ok {
			v = fmt.Sprint(p)
		}
		if k != "RULES_HOSTNAME" {
			env = append(env, k+"="+paths.Replace(v))
		}
	}
	for _, sec := range find(objs, "Secret") {
		data, _ := dig(sec, "data").(map[string]any)
		for k, v := range data {
			b, err := base64.StdEncoding.DecodeString(str(v))
			if err != nil {
				t.Fatalf("Secret %s: %v", k, err)
			}
			env = append(env, k+"="+string(b))
		}
	}
	for _, volume := range []string{"data", "rules"} { // the pod's mounts exist before saker starts
		if err := os.MkdirAll(filepath.Join(dir, volume), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, cm := range find(objs, "ConfigMap") {
		if !strings.HasSuffix(str(dig(cm, "metadata", "name")), "-rules") {
			continue
		}
		data, _ := dig(cm, "data").(map[string]any)
		for name, content := range data {
			testpeers.WriteFile(t, filepath.Join(dir, "rules"), name, str(content))
		}
	}
	cfg, err := filepath.Abs("../docs/examples/config.yaml") // the image's /etc/saker/config.yaml (Dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", ports["LISTENPORT"])
	p := testpeers.Start(t, "saker", []string{sakerBin, "-c", cfg}, env,
		func() bool { return testpeers.HTTPOK(base + "/healthz") }, 30*time.Second)
	if _, err := os.Stat(filepath.Join(dir, "data", "spool")); err != nil {
		t.Errorf("no spool on the data volume: %v\n%s", err, p.Output())
	}
	if user, pass := secretEnv(env, "UI_AUTH_BASIC_USER"), secretEnv(env, "UI_AUTH_BASIC_PASSWORD"); pass != "" && hasUIKeys(t) {
		ui := fmt.Sprintf("http://127.0.0.1:%d/ui/", ports["UI_LISTENPORT"])
		testpeers.Eventually(t, 10*time.Second, func() bool { return testpeers.PortOpen(ports["UI_LISTENPORT"]) }, "UI port open")
		for _, c := range []struct {
			user, pass string
			want       int
		}{{"", "", http.StatusUnauthorized}, {user, pass, http.StatusOK}} {
			req, _ := http.NewRequest(http.MethodGet, ui, nil)
			if c.user != "" {
				req.SetBasicAuth(c.user, c.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("GET /ui/ on the UI port with user %q: %d, want %d", c.user, resp.StatusCode, c.want)
			}
		}
	}
	trace, err := os.ReadFile(goldens.Path("k8s-audit", "traces", "create_configmap_sensitive_values.json"))
	if err != nil {
		t.Fatal(err)
	}
	var items []json.RawMessage
	for _, l := range bytes.Split(bytes.TrimSpace(trace), []byte("\n")) {
		items = append(items, l)
	}
	body, err := json.Marshal(map[string]any{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/k8s-audit", ports["K8SAUDIT_LISTENPORT"]), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST /k8s-audit on the audit port: %d\n%s", resp.StatusCode, p.Output())
	}
}

// secretEnv returns the value of NAME in a NAME=value list.
func secretEnv(env []string, name string) string {
	for _, e := range env {
		if k, v, _ := strings.Cut(e, "="); k == name {
			return v
		}
	}
	return ""
}

// hasUIKeys reports whether this saker has the ui.* keys (the web UI).
func hasUIKeys(t *testing.T) bool {
	return strings.Contains(string(run(t, nil, sakerBin, "config", "docs")), "`UI_LISTENPORT`")
}

// checkNotes renders NOTES.txt through a dry-run install on the real apiserver.
func checkNotes(t *testing.T, helm string, cl *cluster) {
	// release "notes": the dry-run step created t-saker's ServiceAccount for real
	out := string(run(t, nil, helm, "install", "notes", chartDir, "--kubeconfig", cl.kubeconfig, "--namespace", "saker",
		"--dry-run=server", "--set", "auth.token=s3cret-token"))
	for _, want := range []string{"server: http://${NODE_IP}:${NODE_PORT}/k8s-audit", "NODE_PORT=32765", "token: s3cret-token",
		"audit-webhook-config-file", "port-forward -n saker svc/notes-saker 2802", "UI_AUTH_BASIC_PASSWORD"} {
		if !strings.Contains(out, want) {
			t.Errorf("NOTES lack %q:\n%s", want, out)
		}
	}
	// the kubeconfig in NOTES is a valid webhook kubeconfig once the shell variables are set
	i := strings.Index(out, "apiVersion: v1\n     kind: Config")
	if i < 0 {
		t.Fatalf("no kubeconfig in NOTES:\n%s", out)
	}
	block := out[i:]
	block = block[:strings.Index(block, "\n\n")]
	block = regexp.MustCompile(`(?m)^     `).ReplaceAllString(block, "")
	block = strings.NewReplacer("${NODE_IP}", "127.0.0.1", "${NODE_PORT}", "32765").Replace(block)
	var kc struct {
		Clusters []struct {
			Cluster struct{ Server string }
		}
		Users []struct {
			User struct{ Token string }
		}
	}
	if err := yaml.Unmarshal([]byte(block), &kc); err != nil || len(kc.Clusters) != 1 || len(kc.Users) != 1 {
		t.Fatalf("NOTES kubeconfig does not parse (%v):\n%s", err, block)
	}
	if kc.Clusters[0].Cluster.Server != "http://127.0.0.1:32765/k8s-audit" || kc.Users[0].User.Token != "s3cret-token" {
		t.Errorf("NOTES kubeconfig: server %q token %q", kc.Clusters[0].Cluster.Server, kc.Users[0].User.Token)
	}
}

// checkDashboard runs every expression of dashboards/*.json on a real Prometheus scraping saker
// after saker has handled Falco events (and the guide's audit events): each must be valid
// PromQL, and most must return data.
func checkDashboard(t *testing.T, prometheus string, s *sakerProc, sink *sink) {
	port := testpeers.FreePort(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf("global: {scrape_interval: 1s}\nscrape_configs:\n- job_name: saker\n  static_configs: [{targets: ['%s']}]\n",
		strings.TrimPrefix(s.url, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prom.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	testpeers.Start(t, "prometheus", []string{prometheus, "--config.file=" + filepath.Join(dir, "prom.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port)},
		nil, func() bool { return testpeers.HTTPOK(base + "/-/ready") }, 60*time.Second)

	query := func(q string) (status string, n int, errText string) {
		resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Error  string
			Data   struct{ Result []any }
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatalf("query %s: %v", q, err)
		}
		return r.Status, len(r.Data.Result), r.Error
	}
	testpeers.Eventually(t, 30*time.Second, func() bool {
		st, n, _ := query(`up == 1`)
		return st == "success" && n > 0
	}, "Prometheus scraping saker")
	// Falco events in two rounds with Prometheus scrapes between: a series' first sample
	// already holds the first round, so only the second makes its rate non-zero.
	ev, err := os.ReadFile(goldens.Path("falcosidekick", "events", "readme_try_event.json"))
	if err != nil {
		t.Fatal(err)
	}
	post := func() {
		for range 10 {
			resp, err := http.Post(s.url+"/", "application/json", bytes.NewReader(ev))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST /: %d", resp.StatusCode)
			}
		}
	}
	post()
	sink.wait(t, 30*time.Second, func(a alert) bool { return a.Rule == "Write below binary dir" }, "the Falco event delivered")
	testpeers.Eventually(t, 120*time.Second, func() bool {
		st, n, _ := query(`count_over_time(falcosecurity_falcosidekick_falco_events_total{rule="Write below binary dir"}[1m]) >= 2`)
		return st == "success" && n > 0
	}, "Prometheus scraping the first round of events")
	post()
	testpeers.Eventually(t, 120*time.Second, func() bool {
		st, n, _ := query(`sum(rate(falcosecurity_falcosidekick_falco_events_total[1m])) > 0 and sum(rate(saker_retries_total[1m])) > 0`)
		return st == "success" && n > 0
	}, "Prometheus scraping saker's rates")

	exprs := dashboardExprs(t)
	if len(exprs) < 20 {
		t.Fatalf("dashboard has %d queries, want the panels the issue lists", len(exprs))
	}
	withData := 0
	var empty []string
	for _, e := range exprs {
		q := grafanaVars(e)
		st, n, errText := query(q)
		if st != "success" {
			t.Errorf("invalid PromQL %q: %s", q, errText)
			continue
		}
		if n > 0 {
			withData++
		} else {
			empty = append(empty, q)
		}
	}
	// dead-lettered and dropped by output have no series until something is dropped
	if withData < len(exprs)*8/10 {
		t.Errorf("%d of %d dashboard queries return data; empty: %s", withData, len(exprs), strings.Join(empty, "\n"))
	}
	t.Logf("dashboard: %d queries, %d with data", len(exprs), withData)
}

// dashboardExprs returns every "expr" of the dashboards.
func dashboardExprs(t *testing.T) []string {
	files, _ := filepath.Glob(filepath.Join(chartDir, "dashboards", "*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboards/*.json")
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d any
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				if e, ok := x["expr"].(string); ok {
					out = append(out, e)
				}
				for _, c := range x {
					walk(c)
				}
			case []any:
				for _, c := range x {
					walk(c)
				}
			}
		}
		walk(d)
	}
	return out
}

var (
	intervalVar = regexp.MustCompile(`\$(__rate_interval|__interval)\b|\$\{(__rate_interval|__interval)\}`)
	rangeVar    = regexp.MustCompile(`\$__range\b`)
	matcherVar  = regexp.MustCompile(`(=~?|!~?)\s*"\$\{?\w+\}?"`)
)

// grafanaVars replaces Grafana's variables as Grafana would with "All" selected.
func grafanaVars(q string) string {
	q = intervalVar.ReplaceAllString(q, "1m")
	q = rangeVar.ReplaceAllString(q, "5m")
	return matcherVar.ReplaceAllString(q, `=~".*"`)
}

// alert is what the webhook output posts.
type alert struct {
	Rule, Source string
	OutputFields map[string]any `json:"output_fields"`
}

type sink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	alerts []alert
	more   chan struct{}
}

func newSink(t *testing.T) *sink {
	s := &sink{more: make(chan struct{}, 1)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.alerts = append(s.alerts, a)
		s.mu.Unlock()
		select {
		case s.more <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// wait returns once an alert matching ok has arrived.
func (s *sink) wait(t *testing.T, timeout time.Duration, ok func(alert) bool, msg string, args ...any) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		found := slices.ContainsFunc(s.alerts, ok)
		s.mu.Unlock()
		if found {
			return
		}
		select {
		case <-s.more:
		case <-deadline:
			t.Fatalf("after %s: no %s", timeout, fmt.Sprintf(msg, args...))
		}
	}
}

type sakerProc struct{ url string }

func startSaker(t *testing.T, env ...string) *sakerProc {
	t.Helper()
	if sakerBin == "" {
		t.Skip("saker not built")
	}
	port := testpeers.FreePort(t)
	u := fmt.Sprintf("http://127.0.0.1:%d", port)
	testpeers.Start(t, "saker", []string{sakerBin}, append([]string{"LISTENADDRESS=127.0.0.1", fmt.Sprintf("LISTENPORT=%d", port),
		"STDOUT_ENABLED=false"}, env...), func() bool { return testpeers.HTTPOK(u + "/ping") }, 30*time.Second)
	return &sakerProc{url: u}
}

// guide is docs/k3s.md with the files and commands a user copies from it.
type guide struct{ text string }

func readGuide(t *testing.T) guide {
	b, err := os.ReadFile("../docs/k3s.md")
	if err != nil {
		t.Fatal(err)
	}
	return guide{string(b)}
}

// file returns the fenced block following <!-- file: NAME -->.
func (g guide) file(t *testing.T, name string) string {
	t.Helper()
	re := regexp.MustCompile("(?s)<!-- file: " + regexp.QuoteMeta(name) + " -->\\s*```[a-z]*\\n(.*?)```")
	m := re.FindStringSubmatch(g.text)
	if m == nil {
		t.Fatalf("docs/k3s.md has no <!-- file: %s --> block", name)
	}
	return m[1]
}

// command returns the guide's command line starting with prefix (continued over lines
// ending in a backslash), split into words.
func (g guide) command(t *testing.T, prefix string) []string {
	t.Helper()
	text := strings.ReplaceAll(g.text, "\\\n", " ")
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, prefix) {
			return strings.Fields(l)
		}
	}
	t.Fatalf("docs/k3s.md has no command %q", prefix)
	return nil
}

type cluster struct {
	kubectlBin, kubeconfig string
}

func (c *cluster) kubectl(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	return run(t, stdin, c.kubectlBin, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
}

// startCluster starts etcd and a kube-apiserver configured as docs/k3s.md configures k3s: its
// audit policy, its webhook kubeconfig (NODE_IP:32765 pointing at auditAddr) and its
// --kube-apiserver-arg flags.
func startCluster(t *testing.T, kubectl string, g guide, auditAddr string) *cluster {
	dir := t.TempDir()
	write := func(name, content string) string { return testpeers.WriteFile(t, dir, name, content) }
	policy := write("audit-policy.yaml", g.file(t, "audit-policy.yaml"))
	webhook := g.file(t, "audit-webhook.yaml")
	if !strings.Contains(webhook, "NODE_IP:32765") {
		t.Fatalf("the guide's webhook kubeconfig does not post to NODE_IP:32765:\n%s", webhook)
	}
	webhookPath := write("audit-webhook.yaml", strings.ReplaceAll(webhook, "NODE_IP:32765", auditAddr))
	var flags []string
	for _, a := range regexp.MustCompile(`--kube-apiserver-arg=(\S+)`).FindAllStringSubmatch(g.file(t, "k3s-flags"), -1) {
		k, v, _ := strings.Cut(strings.Trim(a[1], `"'`), "=")
		switch k {
		case "audit-policy-file":
			v = policy
		case "audit-webhook-config-file":
			v = webhookPath
		case "audit-log-path":
			v = filepath.Join(dir, "audit.log")
		}
		flags = append(flags, "--"+k+"="+v)
	}
	// the config.yaml form lists the same arguments
	var fromConfig struct {
		Args []string `yaml:"kube-apiserver-arg"`
	}
	if err := yaml.Unmarshal([]byte(g.file(t, "k3s-config.yaml")), &fromConfig); err != nil {
		t.Fatalf("the guide's k3s config.yaml: %v", err)
	}
	var fromFlags []string
	for _, a := range regexp.MustCompile(`--kube-apiserver-arg=(\S+)`).FindAllStringSubmatch(g.file(t, "k3s-flags"), -1) {
		fromFlags = append(fromFlags, strings.Trim(a[1], `"'`))
	}
	if !slices.Equal(fromConfig.Args, fromFlags) {
		t.Errorf("the guide's k3s config.yaml %v differs from its flags %v", fromConfig.Args, fromFlags)
	}
	for _, want := range []string{"--audit-policy-file=", "--audit-webhook-config-file=", "--audit-webhook-batch-max-wait="} {
		if !slices.ContainsFunc(flags, func(f string) bool { return strings.HasPrefix(f, want) }) {
			t.Fatalf("the guide's k3s flags lack %s: %v", want, flags)
		}
	}
	k := testpeers.StartKubeAPIServer(t, flags...)
	return &cluster{kubectlBin: kubectl, kubeconfig: k.Kubeconfig}
}
