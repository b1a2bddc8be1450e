package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// webhookConcurrency is the webhook's effective maxconcurrentrequests for a configuration.
func webhookConcurrency(t *testing.T, file string, environ []string, set map[string]string) int {
	t.Helper()
	if set == nil {
		set = map[string]string{}
	}
	lc, err := loadConfig(&globalFlags{configFile: file, set: set}, append(environ, "WEBHOOK_ADDRESS=http://sink"))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	for _, oc := range lc.enabled() {
		if oc.spec.Name == "webhook" {
			return oc.policy.MaxConcurrentRequests
		}
	}
	t.Fatal("webhook not enabled")
	return 0
}

// TestMaxConcurrentRequestsSameFromEveryLayer: the top-level key replaces the webhook's own
// default (128) whether it comes from the file, the environment or a flag, even when its
// value is the engine's default (4).
func TestMaxConcurrentRequestsSameFromEveryLayer(t *testing.T) {
	if got := webhookConcurrency(t, "", nil, nil); got != 128 {
		t.Errorf("unset: %d, want the webhook's own 128", got)
	}
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("maxconcurrentrequests: 4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]int{
		"file":        webhookConcurrency(t, file, nil, nil),
		"environment": webhookConcurrency(t, "", []string{"MAXCONCURRENTREQUESTS=4"}, nil),
		"flag":        webhookConcurrency(t, "", nil, map[string]string{"maxconcurrentrequests": "4"}),
		"output key":  webhookConcurrency(t, "", []string{"WEBHOOK_MAXCONCURRENTREQUESTS=4"}, nil),
	} {
		if got != 4 {
			t.Errorf("maxconcurrentrequests 4 from the %s: webhook gets %d", name, got)
		}
	}
}

// TestFalcosidekickExampleHasNoFalseWarning loads falcosidekick's config_example.yaml with
// every section saker declares: no unknown key, no suggestion, and no warning about an
// output saker has.
func TestFalcosidekickExampleHasNoFalseWarning(t *testing.T) {
	lc, err := loadConfig(&globalFlags{configFile: filepath.Join("..", "..", "config", "testdata", "falcosidekick", "config_example.yaml"),
		set: map[string]string{}}, nil)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if len(lc.result.Warnings) != 0 {
		t.Errorf("warnings for falcosidekick's example, which enables no output: %q", lc.result.Warnings)
	}
	for _, w := range lc.result.Warnings {
		if strings.Contains(w, "unknown key") || strings.Contains(w, "did you mean") || strings.Contains(w, "falcosidekick key") {
			t.Errorf("false warning: %s", w)
		}
		for _, oc := range lc.outputs {
			if strings.Contains(w, "output "+oc.spec.Section+" ") {
				t.Errorf("warning about a section saker has: %s", w)
			}
		}
	}
}

func TestElasticsearchBatchingAliases(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	_ = os.WriteFile(file, []byte("elasticsearch:\n  hostport: http://es:9200\n  batching:\n    enabled: true\n    batchsize: 5242880\n    flushinterval: 3s\n"), 0o600)
	lc, err := loadConfig(&globalFlags{configFile: file, set: map[string]string{}}, nil)
	if err != nil || len(lc.result.Warnings) != 0 {
		t.Fatalf("loadConfig: %v %q", err, lc.result.Warnings)
	}
	es := lc.enabled()[0]
	if es.spec.Name != "elasticsearch" || es.policy.Batch.MaxBytes != 5242880 || es.policy.Batch.FlushInterval.String() != "3s" || es.policy.Batch.MaxEvents != 100 {
		t.Errorf("%s batch %+v", es.spec.Name, es.policy.Batch)
	}
	lc, err = loadConfig(&globalFlags{set: map[string]string{}}, []string{"ELASTICSEARCH_HOSTPORT=http://es:9200", "ELASTICSEARCH_BATCHING_ENABLED=false"})
	if err != nil {
		t.Fatal(err)
	}
	if b := lc.enabled()[0].policy.Batch; b.MaxEvents != 1 {
		t.Errorf("batching.enabled=false: batch %+v, want one event per request", b)
	}
	_, err = loadConfig(&globalFlags{set: map[string]string{}}, []string{"ELASTICSEARCH_HOSTPORT=http://es:9200", "ELASTICSEARCH_BATCHING_ENABLED=sometimes"})
	if err == nil || !strings.Contains(err.Error(), "elasticsearch.batching.enabled") {
		t.Errorf("bad alias value: %v", err)
	}
}

// TestCustomHeadersRejectedForEveryOutput: each output with customheaders refuses a value
// that is not name:value pairs, naming the key, never printing the value.
func TestCustomHeadersRejectedForEveryOutput(t *testing.T) {
	n := 0
	for _, oc := range newLoadedConfig().outputs {
		key := oc.spec.Section + ".customheaders"
		found := false
		for _, s := range newLoadedConfig().sections {
			for _, k := range s.Keys() {
				found = found || k.Path == key
			}
		}
		if !found {
			continue
		}
		n++
		env := strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		_, err := loadConfig(&globalFlags{set: map[string]string{}}, []string{env + "=Authorization Bearer SECRET"})
		if err == nil || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: err = %v", env, err)
		}
	}
	if n < 4 {
		t.Errorf("only %d outputs with customheaders found", n)
	}
}

func TestGlobalFlagsBeforeTheSubcommand(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	_ = os.WriteFile(file, []byte("listenport: 2999\n"), 0o600)
	for _, args := range [][]string{
		{"-c", file, "config", "check"},
		{"--config-file=" + file, "config", "check"},
		{"config", "check", "-c", file},
		{"--set", "debug=true", "-c", file, "config", "check"},
	} {
		code, stdout, stderr := run(t, nil, args...)
		if code != 0 || !strings.Contains(stdout, "\nlistenport: 2999\n") {
			t.Errorf("%v: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}
	code, _, stderr := run(t, nil, "-c", file, "replay", "x.log")
	if code != 2 || !strings.Contains(stderr, "replay takes no -c/--config-file/--set") {
		t.Errorf("global flags before replay: exit %d %s", code, stderr)
	}
	code, _, stderr = run(t, nil, "config", "check", "stray")
	if code != 2 || !strings.Contains(stderr, `unexpected argument "stray"`) {
		t.Errorf("stray argument: exit %d %q", code, stderr)
	}
}

func TestConfigCheckReportsEnvironment(t *testing.T) {
	code, _, stderr := run(t, []string{"STAN_HOSTPORT=nats://secret-topic:4222", "SLACK_WEBHOOKRUL=https://hooks.example/x",
		"KUBERNETES_SERVICE_HOST=10.0.0.1", "LOKI_PORT=tcp://10.0.0.5:3100"}, "config", "check")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"output stan is retired: NATS Streaming (STAN) reached its end of life in 2023; use the nats output, with nats.jetstream for a durable stream; its keys are ignored (STAN_HOSTPORT)",
		"SLACK_WEBHOOKRUL matches no key and is ignored (did you mean SLACK_WEBHOOKURL?)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	for _, never := range []string{"secret-topic", "hooks.example", "KUBERNETES", "LOKI_PORT"} {
		if strings.Contains(stderr, never) {
			t.Errorf("stderr mentions %q:\n%s", never, stderr)
		}
	}
}

func TestURLWithoutScheme(t *testing.T) {
	code, _, stderr := run(t, []string{"WEBHOOK_ADDRESS=localhost:8080/x"}, "config", "check")
	if code != 1 || !strings.Contains(stderr, "webhook.address: missing scheme http:// or https://") || strings.Contains(stderr, "unparseable") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// TestRocketchatFooterAccepted: falcosidekick declares rocketchat.footer; it is accepted
// without a warning (and, as in falcosidekick, not sent).
func TestRocketchatFooterAccepted(t *testing.T) {
	lc, err := loadConfig(&globalFlags{set: map[string]string{}}, []string{"ROCKETCHAT_WEBHOOKURL=https://chat.example/hooks/a/b", "ROCKETCHAT_FOOTER=https://example/footer"})
	if err != nil || len(lc.result.Warnings) != 0 || len(lc.enabled()) != 1 {
		t.Errorf("err %v, warnings %q", err, lc.result.Warnings)
	}
}

// TestBrokerOutputsFromEnvironment: the broker outputs (issue 14) are configured from the
// environment alone under falcosidekick's names, none is reported unsupported, and `config
// check` prints their secrets redacted.
func TestBrokerOutputsFromEnvironment(t *testing.T) {
	env := []string{"KAFKA_HOSTPORT=k1,k2:9093", "KAFKA_TOPIC=falco", "KAFKA_SASL=PLAIN", "KAFKA_USERNAME=u", "KAFKA_PASSWORD=kpw-secret1",
		"REDIS_ADDRESS=127.0.0.1:6379", "REDIS_PASSWORD=rpw-secret2", "REDIS_STORAGETYPE=hashmap",
		"RABBITMQ_URL=amqp://u:qpw-secret3@mq:5672/", "RABBITMQ_QUEUE=falco",
		"MQTT_BROKER=tcp://mq:1883", "MQTT_USER=u", "MQTT_PASSWORD=mpw-secret4", "MQTT_QOS=1",
		"AZURE_EVENTHUB_NAME=hub", "AZURE_EVENTHUB_CONNECTIONSTRING=Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=s;SharedAccessKey=apw-secret5"}
	code, stdout, stderr := run(t, env, "config", "check")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "# enabled outputs: azureeventhub, kafka, mqtt, rabbitmq, redis") {
		t.Errorf("enabled outputs:\n%s", stdout)
	}
	if strings.Contains(stderr, "not supported") {
		t.Errorf("reported unsupported:\n%s", stderr)
	}
	for _, secret := range []string{"secret1", "secret2", "secret3", "secret4", "secret5"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("config check shows %s", secret)
		}
	}
	// Managed identity is refused by config check, saying so.
	code, _, stderr = run(t, []string{"AZURE_EVENTHUB_NAME=hub", "AZURE_EVENTHUB_NAMESPACE=ns", "AZURE_PODIDENTITYCLIENTID=x"}, "config", "check")
	if code != 1 || !strings.Contains(stderr, "managed identity is not supported") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// TestOTLPAndTimescaleDBKeys: falcosidekick's otlp.* and timescaledb keys load without a
// warning (file and environment alike), otlp.*.timeout is read in milliseconds,
// otlp.traces.synced turns batching off, and config check hides the secrets.
func TestOTLPAndTimescaleDBKeys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	_ = os.WriteFile(file, []byte(`otlp:
  traces:
    endpoint: http://otel:4318/v1/traces
    protocol: http/json
    timeout: 5000
    headers: "Authorization=Bearer%20SUPERSECRET1"
    synced: true
    duration: 2000
    extraenvvars:
      OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: 10000
    minimumpriority: warning
    tls: false
    checkcert: true
  metrics:
    endpoint: http://otel:4317
    protocol: grpc
    timeout: 2s
    extraattributes: k8s.ns.name,proc.name
timescaledb:
  host: db
  port: "5433"
  user: falco
  password: SUPERSECRET2
  database: alerts
  hypertablename: falco_events
`), 0o600)
	lc, err := loadConfig(&globalFlags{configFile: file, set: map[string]string{}}, []string{"OTLP_LOGS_ENDPOINT=https://otel:4318", "OTLP_LOGS_TIMEOUT=2500"})
	if err != nil || len(lc.result.Warnings) != 0 {
		t.Fatalf("loadConfig: %v %q", err, lc.result.Warnings)
	}
	got := map[string]outputConfig{}
	for _, oc := range lc.enabled() {
		got[oc.spec.Name] = oc
	}
	for name, want := range map[string]string{"otlptraces": "5s", "otlplogs": "2.5s", "otlpmetrics": "2s", "timescaledb": "10s"} {
		oc, ok := got[name]
		if !ok {
			t.Errorf("%s not enabled", name)
			continue
		}
		if oc.policy.Timeout.String() != want {
			t.Errorf("%s timeout %s, want %s", name, oc.policy.Timeout, want)
		}
	}
	if b := got["otlptraces"].policy.Batch; b.MaxEvents != 1 {
		t.Errorf("synced: batch %+v, want one event per export", b)
	}
	if b := got["otlplogs"].policy.Batch; b.MaxEvents != 100 {
		t.Errorf("otlplogs batch %+v", b)
	}
	code, stdout, stderr := run(t, []string{"OTLP_TRACES_ENDPOINT=http://otel:4318", "OTLP_TRACES_HEADERS=x-key=SUPERSECRET3",
		"TIMESCALEDB_HOST=db", "TIMESCALEDB_PASSWORD=SUPERSECRET4"}, "config", "check")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout+stderr, "SUPERSECRET") {
		t.Errorf("secret printed:\n%s", stdout)
	}
	if !strings.Contains(stdout, "# enabled outputs: otlptraces, timescaledb") {
		t.Errorf("stdout:\n%s", stdout)
	}
	lc, err = loadConfig(&globalFlags{set: map[string]string{"otlp.logs.timeout": "750"}}, []string{"OTLP_LOGS_ENDPOINT=http://otel:4318", "OTLP_LOGS_TIMEOUT=2500"})
	if err != nil || lc.enabled()[0].policy.Timeout.String() != "750ms" {
		t.Errorf("--set otlp.logs.timeout=750: %v", err)
	}
	_, err = loadConfig(&globalFlags{set: map[string]string{}}, []string{"OTLP_LOGS_ENDPOINT=http://otel:4318", "OTLP_LOGS_TIMEOUT=soon"})
	if err == nil || !strings.Contains(err.Error(), "otlp.logs.timeout") {
		t.Errorf("bad timeout: %v", err)
	}
}
