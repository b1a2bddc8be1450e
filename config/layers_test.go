package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestIsSetFromEveryLayer: a key set to its default value is still set, whichever layer set
// it (the file used to be compared with the default and lost).
func TestIsSetFromEveryLayer(t *testing.T) {
	file := writeFile(t, "listenport: 2801\nwebhook:\n  queuesize: 10000\n")
	for _, c := range []struct {
		name  string
		opts  Options
		layer string
	}{
		{"file", Options{File: file}, LayerFile},
		{"environment", Options{Environ: []string{"LISTENPORT=2801", "WEBHOOK_QUEUESIZE=10000"}}, LayerEnvironment},
		{"flags", Options{Flags: map[string]string{"listenport": "2801", "webhook.queuesize": "10000"}}, LayerFlags},
	} {
		f, res := load(t, c.opts)
		if f.global.ListenPort != 2801 || f.hookPol.QueueSize != 10000 {
			t.Errorf("%s: values %d %d", c.name, f.global.ListenPort, f.hookPol.QueueSize)
		}
		for _, key := range []string{"listenport", "webhook.queuesize", "webhook"} {
			if !res.IsSet(key) || res.SetBy(key) != c.layer {
				t.Errorf("%s: IsSet(%q) = %v, SetBy = %q, want set by %s", c.name, key, res.IsSet(key), res.SetBy(key), c.layer)
			}
		}
		for _, key := range []string{"debug", "queuesize", "slack", "webhook.timeout"} {
			if res.IsSet(key) {
				t.Errorf("%s: IsSet(%q) is true, nothing set it", c.name, key)
			}
		}
	}
	_, res := load(t, Options{File: file, Environ: []string{"LISTENPORT=2801"}, Flags: map[string]string{"listenport": "2801"}})
	if res.SetBy("listenport") != LayerFlags || res.SetBy("webhook.queuesize") != LayerFile {
		t.Errorf("SetBy listenport %q, webhook.queuesize %q", res.SetBy("listenport"), res.SetBy("webhook.queuesize"))
	}
}

// TestNullSectionsAreNotUnknown: falcosidekick's example comments out every key of most
// sections, which YAML reads as null values.
func TestNullSectionsAreNotUnknown(t *testing.T) {
	file := writeFile(t, "webhook:\nslack:\n  channel:\nloki:\nalertmanager:\naws:\n  sqs:\n  lambda:\nwebex:\ndiscord:\n  webhookurl: \"\"\n")
	f, res := load(t, Options{File: file})
	if len(res.Warnings) != 0 {
		t.Errorf("warnings for null or empty sections: %q", res.Warnings)
	}
	if res.IsSet("webhook") || res.IsSet("slack.channel") || f.webhook.Method != "POST" {
		t.Errorf("a null value set something: %+v", f.webhook)
	}
}

func TestFalcosidekickOutputsSakerLacks(t *testing.T) {
	file := writeFile(t, "discord:\n  webhookurl: https://discord.example/api/webhooks/1/SECRET\n  icon: x\ngcp:\n  pubsub:\n    topic: t\nprometheus:\n  extralabels: a\nstan:\n  hostport: nats://nats:4222\n")
	_, res := load(t, Options{File: file})
	joined := strings.Join(res.Warnings, "\n")
	for _, want := range []string{
		"output discord is not supported by this version; its keys are ignored",
		"output gcp is not supported by this version; its keys are ignored",
		"output stan is retired: NATS Streaming (STAN) reached its end of life in 2023; use the nats output",
	} {
		if strings.Count(joined, want) != 1 {
			t.Errorf("want exactly one %q in:\n%s", want, joined)
		}
	}
	// prometheus.extralabels is a key saker has (labels of falco_events_total).
	if len(res.Warnings) != 3 || strings.Contains(joined, "prometheus") || strings.Contains(joined, "SECRET") || strings.Contains(joined, "did you mean") || strings.Contains(joined, "unknown key") {
		t.Errorf("want one line per output, no value, no suggestion:\n%s", joined)
	}
}

// TestFalcosidekickExample loads falcosidekick's own example file: it enables no output
// saker lacks (its values there are empty or tuning defaults such as opsgenie.region), so
// nothing is reported but the fixture's own gap.
func TestFalcosidekickExample(t *testing.T) {
	_, res := load(t, Options{File: filepath.Join("testdata", "falcosidekick", "config_example.yaml")})
	for _, w := range res.Warnings {
		if !strings.Contains(w, `falcosidekick key "slack.outputformat"`) { // a key the small fixture does not declare
			t.Errorf("unexpected warning: %s", w)
		}
	}
}

// TestTuningKeysAloneDoNotReport: an output saker lacks is reported when a key that would
// enable it is set, not for tuning defaults (falcosidekick's Helm chart sets them all).
func TestTuningKeysAloneDoNotReport(t *testing.T) {
	_, res := load(t, Options{File: writeFile(t, "opsgenie:\n  region: eu\n  minimumpriority: debug\nkubeless:\n  port: 8080\n"),
		Environ: []string{"PAGERDUTY_REGION=us", "OPENFAAS_GATEWAYPORT=8080"}})
	if len(res.Warnings) != 0 {
		t.Errorf("warnings for tuning keys: %q", res.Warnings)
	}
	_, res = load(t, Options{File: writeFile(t, "opsgenie:\n  region: eu\n  apikey: SECRET\n"), Environ: []string{"PAGERDUTY_ROUTINGKEY=SECRET"}})
	joined := strings.Join(res.Warnings, "\n")
	if len(res.Warnings) != 2 || !strings.Contains(joined, "output opsgenie is not supported") ||
		!strings.Contains(joined, "output pagerduty is not supported by this version; its keys are ignored (PAGERDUTY_ROUTINGKEY)") || strings.Contains(joined, "SECRET") {
		t.Errorf("warnings: %s", joined)
	}
}

// TestFalcosidekickKeysCoverTheExample keeps the stored list of falcosidekick sections in
// step with the example file it was derived from.
func TestFalcosidekickKeysCoverTheExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "falcosidekick", "config_example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			path := strings.ToLower(k)
			if prefix != "" {
				path = prefix + "." + path
			}
			if prefix == "customfields" || prefix == "otlp.traces.extraenvvars" {
				continue
			}
			if !isFalcosidekickKey(path) && !falcosidekickSections()[path] {
				t.Errorf("%s is in config_example.yaml but not in falcosidekickKeys", path)
			}
			if sub, ok := v.(map[string]any); ok {
				walk(path, sub)
			}
		}
	}
	walk("", doc)
}

func TestEnvironmentReports(t *testing.T) {
	environ := []string{
		"DISCORD_WEBHOOKURL=https://discord.example/api/webhooks/1/SECRET",
		"DISCORD_ICON=", // empty: configures nothing
		"SLACK_WEBHOOKRUL=https://hooks.example/SECRET2",
		"SLACK_ICON=https://x/icon.png", // a falcosidekick key the fixture lacks
		"PATH=/usr/bin", "HOME=/root", "KUBERNETES_SERVICE_HOST=10.0.0.1",
		"WEBHOOK_PORT=tcp://10.0.0.2:80", "WEBHOOK_SERVICE_HOST=10.0.0.2", // Kubernetes service links
		"REDIS_PORT=tcp://10.0.0.3:6379", "AWS_DEFAULT_REGION=eu-west-1", "slack_webhookrul=x",
	}
	_, res := load(t, Options{Environ: environ})
	joined := strings.Join(res.Warnings, "\n")
	for _, want := range []string{
		"environment: output discord is not supported by this version; its keys are ignored (DISCORD_WEBHOOKURL)",
		"environment variable SLACK_WEBHOOKRUL matches no key and is ignored (did you mean SLACK_WEBHOOKURL?)",
		`environment variable SLACK_ICON: falcosidekick key "slack.icon" is not supported by this version; ignored`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
	if len(res.Warnings) != 3 {
		t.Errorf("want 3 warnings, got %d:\n%s", len(res.Warnings), joined)
	}
	for _, never := range []string{"SECRET", "discord.example", "PATH", "KUBERNETES", "REDIS", "WEBHOOK_PORT", "AWS_DEFAULT_REGION", "DISCORD_ICON"} {
		if strings.Contains(joined, never) {
			t.Errorf("warnings mention %q:\n%s", never, joined)
		}
	}
}

func TestSecretValuesNeverInErrors(t *testing.T) {
	file := writeFile(t, "slack:\n  webhookurl: [https://hooks.slack.com/services/T/B/SECRET]\n")
	_, secs := newFixture()
	_, err := Load(Options{File: file, Sections: secs})
	if err == nil || !strings.Contains(err.Error(), "slack.webhookurl: invalid value") || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("err = %v, want the key named and the value hidden", err)
	}
	_, secs = newFixture()
	_, err = Load(Options{Environ: []string{"WEBHOOK_CUSTOMHEADERS=Authorization Bearer SECRET"}, Sections: secs})
	if err == nil || !strings.Contains(err.Error(), "webhook.customheaders (WEBHOOK_CUSTOMHEADERS): item 1 is not name:value") || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("err = %v, want the key named and the value hidden", err)
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Errorf("%T is not Errors", err)
	}
	_, secs = newFixture()
	_, err = Load(Options{File: writeFile(t, "webhook:\n  customheaders: \"X-A:1,Bearer SECRET\"\n"), Sections: secs})
	if err == nil || !strings.Contains(err.Error(), "webhook.customheaders: item 2 is not name:value") || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("err = %v, want the key named and the value hidden", err)
	}
	f, _ := load(t, Options{File: writeFile(t, "webhook:\n  customheaders: \"X-A:1,X-B:2\"\n")})
	if f.webhook.CustomHeaders["X-B"] != "2" || len(f.webhook.CustomHeaders) != 2 {
		t.Errorf("a k:v string in the file: %v", f.webhook.CustomHeaders)
	}
}

func TestAliases(t *testing.T) {
	alias := Alias{Path: "webhook.batching.size", Expand: func(v string) (map[string]any, error) {
		if v == "bad" {
			return nil, errors.New("not a size")
		}
		return map[string]any{"webhook.queuesize": v}, nil
	}}
	f, secs := newFixture()
	res, err := Load(Options{File: writeFile(t, "webhook:\n  batching:\n    size: 7\n"), Sections: secs, Aliases: []Alias{alias}})
	if err != nil || f.hookPol.QueueSize != 7 || len(res.Warnings) != 0 || res.SetBy("webhook.queuesize") != LayerFile {
		t.Errorf("file alias: err %v, queuesize %d, warnings %q", err, f.hookPol.QueueSize, res.Warnings)
	}
	f, secs = newFixture()
	_, err = Load(Options{Environ: []string{"WEBHOOK_BATCHING_SIZE=8", "WEBHOOK_QUEUESIZE=9"}, Sections: secs, Aliases: []Alias{alias}})
	if err != nil || f.hookPol.QueueSize != 9 {
		t.Errorf("the canonical key must win over its alias in the same layer: %v %d", err, f.hookPol.QueueSize)
	}
	_, secs = newFixture()
	_, err = Load(Options{Flags: map[string]string{"webhook.batching.size": "bad"}, Sections: secs, Aliases: []Alias{alias}})
	if err == nil || !strings.Contains(err.Error(), "webhook.batching.size: not a size") {
		t.Errorf("alias error: %v", err)
	}
}

func TestSuggestionsOnlyForCloseKeys(t *testing.T) {
	file := writeFile(t, "slack:\n  chanel: x\n  zz: 1\nwebhok:\n  address: x\n")
	_, res := load(t, Options{File: file})
	joined := strings.Join(res.Warnings, "\n")
	if !strings.Contains(joined, `unknown key "slack.chanel" ignored (did you mean "slack.channel"?)`) {
		t.Errorf("close key not suggested:\n%s", joined)
	}
	if strings.Contains(joined, `"slack.zz" ignored (did you mean`) || strings.Contains(joined, `"webhok" ignored (did you mean "debug"`) {
		t.Errorf("far-fetched suggestion:\n%s", joined)
	}
}
