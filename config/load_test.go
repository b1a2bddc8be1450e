package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testPolicy mirrors a delivery policy: global values that outputs inherit.
type testPolicy struct {
	QueueSize int           `koanf:"queuesize"`
	Timeout   time.Duration `koanf:"timeout"`
	Retry     struct {
		Initial     time.Duration `koanf:"initial"`
		MaxAttempts int           `koanf:"maxattempts"`
	} `koanf:"retry"`
}

type testWebhook struct {
	Address       string            `koanf:"address"`
	Method        string            `koanf:"method"`
	CustomHeaders map[string]string `koanf:"customheaders" secret:"true"`
	CheckCert     bool              `koanf:"checkcert"`
}

type testSlack struct {
	WebhookURL string `koanf:"webhookurl" secret:"true"`
	Channel    string `koanf:"channel"`
}

type fixture struct {
	global  *Global
	policy  *testPolicy
	webhook *testWebhook
	hookPol *testPolicy
	slack   *testSlack
}

func newFixture() (*fixture, []Section) {
	f := &fixture{global: DefaultGlobal(), policy: &testPolicy{QueueSize: 10000, Timeout: 10 * time.Second},
		webhook: &testWebhook{Method: "POST", CheckCert: true}, hookPol: &testPolicy{}, slack: &testSlack{}}
	f.policy.Retry.Initial = 500 * time.Millisecond
	return f, []Section{
		{Path: "", Target: f.global},
		{Path: "", Target: f.policy},
		{Path: "webhook", Target: f.webhook},
		{Path: "webhook", Target: f.hookPol, Inherit: true, Prepare: func() { *f.hookPol = *f.policy }},
		{Path: "slack", Target: f.slack},
	}
}

func writeFile(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, o Options) (*fixture, *Result) {
	t.Helper()
	f, secs := newFixture()
	o.Sections = secs
	res, err := Load(o)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return f, res
}

func TestDefaults(t *testing.T) {
	f, res := load(t, Options{})
	if f.global.ListenPort != 2801 || f.global.MaxBodySize != 1<<20 || f.global.ShutdownTimeout != 10*time.Second {
		t.Errorf("global %+v", f.global)
	}
	if f.hookPol.QueueSize != 10000 || f.webhook.Method != "POST" || !f.webhook.CheckCert {
		t.Errorf("webhook %+v %+v", f.webhook, f.hookPol)
	}
	if len(res.Warnings) != 0 || res.IsSet("listenport") {
		t.Errorf("warnings %v, listenport set %v", res.Warnings, res.IsSet("listenport"))
	}
}

func TestPrecedenceFileEnvFlags(t *testing.T) {
	file := writeFile(t, "listenport: 1111\ndebug: true\nwebhook:\n  address: http://file\n  method: PUT\nslack:\n  channel: file-chan\n")
	f, res := load(t, Options{
		File:    file,
		Environ: []string{"LISTENPORT=2222", "WEBHOOK_ADDRESS=http://env", "IGNORED=1", "NOEQUALS"},
		Flags:   map[string]string{"listenport": "3333"},
	})
	if f.global.ListenPort != 3333 {
		t.Errorf("listenport %d, want the flag's 3333", f.global.ListenPort)
	}
	if f.webhook.Address != "http://env" {
		t.Errorf("webhook.address %q, want env's", f.webhook.Address)
	}
	if f.webhook.Method != "PUT" || !f.global.Debug || f.slack.Channel != "file-chan" {
		t.Errorf("file values lost: %+v debug=%v %+v", f.webhook, f.global.Debug, f.slack)
	}
	if !res.IsSet("listenport") || !res.IsSet("webhook.address") || res.IsSet("slack.webhookurl") {
		t.Error("IsSet wrong")
	}
	_, res = load(t, Options{File: file, Environ: []string{"LISTENPORT=2222"}})
	f2, _ := load(t, Options{File: file, Environ: []string{"LISTENPORT=2222"}})
	if f2.global.ListenPort != 2222 {
		t.Errorf("env did not beat the file: %d", f2.global.ListenPort)
	}
	_ = res
}

func TestEnvMapsAndLists(t *testing.T) {
	f, _ := load(t, Options{Environ: []string{
		"WEBHOOK_CUSTOMHEADERS=X-A:1, Authorization:Bearer a:b ,X-Empty:,",
		"CUSTOMFIELDS=Env:prod,k8s.cluster:eu",
		"CUSTOMTAGS=a, b,,c",
		"TEMPLATEDFIELDS=Who:{{ .user }}",
	}})
	wantH := map[string]string{"X-A": "1", "Authorization": "Bearer a:b", "X-Empty": ""}
	if !reflect.DeepEqual(f.webhook.CustomHeaders, wantH) {
		t.Errorf("customheaders %#v", f.webhook.CustomHeaders)
	}
	if !reflect.DeepEqual(f.global.CustomFields, map[string]string{"Env": "prod", "k8s.cluster": "eu"}) {
		t.Errorf("customfields %#v", f.global.CustomFields)
	}
	if !reflect.DeepEqual(f.global.CustomTags, []string{"a", "b", "c"}) {
		t.Errorf("customtags %#v", f.global.CustomTags)
	}
	if f.global.TemplatedFields["Who"] != "{{ .user }}" {
		t.Errorf("templatedfields %#v", f.global.TemplatedFields)
	}
}

func TestYAMLKeysCaseInsensitiveMapKeysKeepCase(t *testing.T) {
	file := writeFile(t, `
ListenPort: 4444
outputFieldFormat: "<output> <tags>"
CustomFields:
  Environment: Prod
  k8s.Cluster: EU
  Count: 3
  Empty:
customtags: [x, y]
Webhook:
  Address: http://h
  CustomHeaders:
    X-Api-Key: s3cret
`)
	f, res := load(t, Options{File: file})
	if f.global.ListenPort != 4444 || f.global.OutputFieldFormat != "<output> <tags>" {
		t.Errorf("global %+v", f.global)
	}
	if !reflect.DeepEqual(f.global.CustomFields, map[string]string{"Environment": "Prod", "k8s.Cluster": "EU", "Count": "3", "Empty": ""}) {
		t.Errorf("customfields %#v", f.global.CustomFields)
	}
	if f.webhook.Address != "http://h" || f.webhook.CustomHeaders["X-Api-Key"] != "s3cret" {
		t.Errorf("webhook %+v", f.webhook)
	}
	if !reflect.DeepEqual(f.global.CustomTags, []string{"x", "y"}) {
		t.Errorf("customtags %v", f.global.CustomTags)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings %v", res.Warnings)
	}
}

func TestUnknownKeysWarnWithSuggestion(t *testing.T) {
	file := writeFile(t, "listenprot: 1\nslack:\n  webhookur: x\ntotallyunrelatedthing: 1\n")
	_, res := load(t, Options{File: file})
	joined := strings.Join(res.Warnings, "\n")
	for _, want := range []string{
		`unknown key "listenprot" ignored (did you mean "listenport"?)`,
		`unknown key "slack.webhookur" ignored (did you mean "slack.webhookurl"?)`,
		`unknown key "totallyunrelatedthing" ignored`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, `"totallyunrelatedthing" ignored (did you mean`) {
		t.Errorf("far-fetched suggestion: %s", joined)
	}
	if !strings.Contains(joined, file) {
		t.Errorf("warnings do not name the file: %s", joined)
	}
}

func TestUnknownFlagIsAnError(t *testing.T) {
	_, secs := newFixture()
	_, err := Load(Options{Flags: map[string]string{"webhook.adress": "x"}, Sections: secs})
	if err == nil || !strings.Contains(err.Error(), `flag sets unknown key "webhook.adress" (did you mean "webhook.address"?)`) {
		t.Errorf("err = %v", err)
	}
}

func TestInvalidValuesNameTheKey(t *testing.T) {
	cases := []struct {
		env  []string
		want []string
	}{
		{[]string{"LISTENPORT=http"}, []string{`listenport: invalid value "http"`}},
		{[]string{"SHUTDOWNTIMEOUT=soon"}, []string{`shutdowntimeout: invalid value "soon"`, "invalid duration"}},
		{[]string{"WEBHOOK_TIMEOUT=5 parsecs"}, []string{`webhook.timeout: invalid value "5 parsecs"`}},
		{[]string{"WEBHOOK_CHECKCERT=maybe"}, []string{`webhook.checkcert: invalid value "maybe"`}},
		{[]string{"LISTENPORT=70000"}, []string{"listenport must be 1-65535, got 70000"}},
		{[]string{"LOGFORMAT=xml"}, []string{`logformat must be text or json, got "xml"`}},
		{[]string{"MAXBODYSIZE=-1"}, []string{"maxbodysize must be positive, got -1"}},
		// Several problems at once are all reported.
		{[]string{"LISTENPORT=x", "TIMEOUT=y", "WEBHOOK_RETRY_MAXATTEMPTS=z"}, []string{`listenport: invalid value "x"`, `timeout: invalid value "y"`, `webhook.retry.maxattempts: invalid value "z"`}},
	}
	for _, c := range cases {
		_, secs := newFixture()
		_, err := Load(Options{Environ: c.env, Sections: secs})
		if err == nil {
			t.Errorf("%v accepted", c.env)
			continue
		}
		var errs Errors
		if !errors.As(err, &errs) {
			t.Errorf("%v: error %T is not config.Errors", c.env, err)
		}
		if len(errs) < len(c.env) {
			t.Errorf("%v: %d errors, want one per bad key: %v", c.env, len(errs), err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not name %q", c.env, err, w)
			}
		}
	}
}

func TestBadFile(t *testing.T) {
	_, secs := newFixture()
	if _, err := Load(Options{File: filepath.Join(t.TempDir(), "nope.yaml"), Sections: secs}); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("missing file: %v", err)
	}
	_, secs = newFixture()
	if _, err := Load(Options{File: writeFile(t, "listenport: [1\n"), Sections: secs}); err == nil || !strings.Contains(err.Error(), "parse config file") {
		t.Errorf("bad YAML: %v", err)
	}
}

func TestValidateGlobal(t *testing.T) {
	mod := func(f func(*Global)) *Global { g := DefaultGlobal(); f(g); return g }
	cases := map[string]*Global{
		"":                                  DefaultGlobal(),
		"listenport must be 1-65535, got 0": mod(func(g *Global) { g.ListenPort = 0 }),
		"shutdowntimeout must be positive, got 0s":  mod(func(g *Global) { g.ShutdownTimeout = 0 }),
		"tlsserver.notlsport must be 0-65535":       mod(func(g *Global) { g.TLSServer.NoTLSPort = -1 }),
		"metrics.maxeventseries must be positive":   mod(func(g *Global) { g.Metrics.MaxEventSeries = 0 }),
		"maxbodysize must be positive, got 0":       mod(func(g *Global) { g.MaxBodySize = 0 }),
		`logformat must be text or json, got "yml"`: mod(func(g *Global) { g.LogFormat = "yml" }),
		"deliveryround must be 0-1s, got -1ms":      mod(func(g *Global) { g.DeliveryRound = -time.Millisecond }),
		"deliveryround must be 0-1s, got 2s":        mod(func(g *Global) { g.DeliveryRound = 2 * time.Second }),
	}
	for want, g := range cases {
		err := g.Validate()
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("Validate = %v, want %q", err, want)
		}
	}
}

func TestInheritedSectionOverridesOnlyWhatIsSet(t *testing.T) {
	file := writeFile(t, "timeout: 3s\nretry:\n  initial: 2s\n  maxattempts: 9\nwebhook:\n  address: http://x\n  retry:\n    maxattempts: 4\n")
	f, _ := load(t, Options{File: file, Environ: []string{"WEBHOOK_QUEUESIZE=7"}})
	if f.policy.Timeout != 3*time.Second || f.policy.Retry.Initial != 2*time.Second || f.policy.Retry.MaxAttempts != 9 {
		t.Errorf("global policy %+v", f.policy)
	}
	hp := f.hookPol
	if hp.Timeout != 3*time.Second || hp.Retry.Initial != 2*time.Second {
		t.Errorf("webhook policy did not inherit: %+v", hp)
	}
	if hp.Retry.MaxAttempts != 4 || hp.QueueSize != 7 {
		t.Errorf("webhook overrides lost: %+v", hp)
	}
	if f.policy.QueueSize != 10000 || f.policy.Retry.MaxAttempts != 9 {
		t.Errorf("override leaked into the global policy: %+v", f.policy)
	}
}

func TestRedacted(t *testing.T) {
	_, res := load(t, Options{Environ: []string{
		"SLACK_WEBHOOKURL=https://hooks.slack.com/services/T000/B000/XXXXSECRET",
		"WEBHOOK_CUSTOMHEADERS=Authorization:Bearer topsecret",
		"WEBHOOK_ADDRESS=http://sink",
	}})
	lines := res.Redacted()
	joined := strings.Join(lines, "\n")
	for _, secret := range []string{"XXXXSECRET", "topsecret", "hooks.slack.com"} {
		if strings.Contains(joined, secret) {
			t.Errorf("secret %q printed:\n%s", secret, joined)
		}
	}
	for _, want := range []string{"slack.webhookurl: REDACTED", "REDACTED", "webhook.address: http://sink", "listenport: 2801"} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing %q:\n%s", want, joined)
		}
	}
	if !strings.Contains(joined, "Authorization") {
		t.Errorf("header names are not secrets:\n%s", joined)
	}
	if !isSortedStrings(lines) {
		t.Error("not sorted")
	}
	_, res = load(t, Options{})
	joined = strings.Join(res.Redacted(), "\n")
	if !strings.Contains(joined, "slack.webhookurl: \n") && !strings.HasSuffix(joined, "slack.webhookurl: ") {
		t.Errorf("an empty secret must show as empty:\n%s", joined)
	}
}

func isSortedStrings(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] > s[i] {
			return false
		}
	}
	return true
}

func TestSectionKeysAndEnvNames(t *testing.T) {
	_, secs := newFixture()
	keys := secs[2].Keys()
	var paths []string
	for _, k := range keys {
		paths = append(paths, k.Path+"="+k.EnvName())
	}
	want := "webhook.address=WEBHOOK_ADDRESS webhook.checkcert=WEBHOOK_CHECKCERT webhook.customheaders=WEBHOOK_CUSTOMHEADERS webhook.method=WEBHOOK_METHOD"
	if strings.Join(paths, " ") != want {
		t.Errorf("keys %v", paths)
	}
	if keys[2].Kind != Map || !keys[2].Secret || keys[0].Kind != Scalar {
		t.Errorf("kinds %+v", keys)
	}
	if EnvName("aws.sqs.url") != "AWS_SQS_URL" {
		t.Error("EnvName")
	}
	for _, k := range secs[0].Keys() {
		if k.Path == "customtags" && (k.Kind != List || k.Type != "list of string") {
			t.Errorf("customtags %+v", k)
		}
		if k.Path == "shutdowntimeout" && k.Type != "duration" {
			t.Errorf("shutdowntimeout %+v", k)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"listenprot", "listenport", 1}, {"webhookrul", "webhookurl", 1}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q,%q) = %d", c.a, c.b, got)
		}
	}
}

// FuzzLoadYAML feeds arbitrary YAML through the file path of Load: it may fail, but must
// not panic, and warnings and errors must be printable.
func FuzzLoadYAML(f *testing.F) {
	for _, s := range []string{
		"listenport: 1\nwebhook:\n  address: http://x\n  customheaders:\n    A: b\n",
		"customfields: [1,2]\n", "webhook: 3\n", "CustomFields:\n  a: {b: c}\n", "retry:\n  initial: -1s\n",
		"? [a]\n: b\n", "~: 1\n", "listenport: 1e99\n", "customtags: a,b\n", "timeout: 1h\nwebhook:\n  retry: null\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, yaml []byte) {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, yaml, 0o600); err != nil {
			t.Fatal(err)
		}
		_, secs := newFixture()
		res, err := Load(Options{File: p, Sections: secs})
		if err != nil {
			_ = err.Error()
		}
		if res != nil {
			_ = res.Redacted()
			_ = strings.Join(res.Warnings, "")
		}
	})
}

// sharedSection validates like an output section shared by several outputs (aws.*).
type sharedSection struct {
	Bucket string `koanf:"bucket"`
}

func (s *sharedSection) Validate() error {
	if s.Bucket == "x" {
		return errors.New("shared.bucket is too short")
	}
	return nil
}

// TestSharedSectionErrorReportedOnce: several outputs decoding the same section report its
// problem once, not once per output.
func TestSharedSectionErrorReportedOnce(t *testing.T) {
	_, err := Load(Options{Environ: []string{"SHARED_BUCKET=x"},
		Sections: []Section{{Path: "shared", Target: &sharedSection{}}, {Path: "shared", Target: &sharedSection{}}}})
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || !strings.Contains(errs[0].Error(), "shared.bucket") {
		t.Fatalf("Load = %v, want the problem once", err)
	}
}
