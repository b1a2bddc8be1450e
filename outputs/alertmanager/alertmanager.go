// Package alertmanager posts each event as a Prometheus Alertmanager v2 alert, with
// falcosidekick's labels, annotations and severity mapping, to every configured instance.
package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// Config is the alertmanager.* section (falcosidekick's keys).
type Config struct {
	HostPort                 []string          `koanf:"hostport" doc:"Alertmanager base URLs, comma separated; every instance receives each alert; setting it enables the output"`
	Endpoint                 string            `koanf:"endpoint" doc:"path alerts are posted to"`
	ExpiresAfter             int               `koanf:"expiresafter" doc:"seconds after which the alert resolves (endsAt = send time + this); 0 leaves endsAt to Alertmanager's resolve_timeout"`
	ExtraLabels              map[string]string `koanf:"extralabels" doc:"labels added to every alert (env: \"team:secops,env:prod\")"`
	ExtraAnnotations         map[string]string `koanf:"extraannotations" doc:"annotations added to every alert (env: \"runbook:https://...\")"`
	CustomSeverityMap        map[string]string `koanf:"customseveritymap" doc:"Falco priority to severity label overrides (env: \"debug:low,critical:page\")"`
	DropEventDefaultPriority string            `koanf:"dropeventdefaultpriority" doc:"priority given to a syscall-drop event whose n_drop* count is above 0 but under every threshold"`
	DropEventThresholds      string            `koanf:"dropeventthresholds" doc:"\"count:priority\" list: an n_drop* field above count is bucketed as \">count\" and raises the event to priority"`
	GeneratorURL             string            `koanf:"generatorurl" doc:"generatorURL of each alert; {uuid} and {rule} are replaced by the event's (URL-escaped)"`
	CustomHeaders            map[string]string `koanf:"customheaders" secret:"true" doc:"extra request headers (env: \"Authorization:Bearer x,X-A:1\")"`
	CheckCert                bool              `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS                bool              `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

func defaults() *Config {
	return &Config{
		Endpoint:                 "/api/v2/alerts",
		DropEventDefaultPriority: "critical",
		DropEventThresholds:      "10000:critical, 1000:critical, 100:critical, 10:warning, 1:warning",
		CheckCert:                true,
	}
}

// settings are the parsed, checked values of a Config: New builds from them, so the text
// of the configuration is read once.
type settings struct {
	urls       []string
	severity   map[event.Priority]string
	dropPrio   event.Priority
	thresholds []Threshold
}

// Validate names the key at fault. It does not change c.
func (c *Config) Validate() error {
	_, err := c.parse()
	return err
}

// parse checks every key and returns the values New needs.
func (c *Config) parse() (settings, error) {
	var s settings
	if len(c.HostPort) == 0 {
		return s, nil
	}
	if !strings.HasPrefix(c.Endpoint, "/") {
		return s, fmt.Errorf("alertmanager.endpoint must start with /, got %q", c.Endpoint)
	}
	for _, h := range c.HostPort {
		h = strings.TrimSpace(h)
		if err := outputs.ValidateURL("alertmanager.hostport", h); err != nil {
			return s, err
		}
		s.urls = append(s.urls, strings.TrimRight(h, "/")+c.Endpoint)
	}
	if c.ExpiresAfter < 0 {
		return s, fmt.Errorf("alertmanager.expiresafter must not be negative, got %d", c.ExpiresAfter)
	}
	var err error
	if s.severity, err = parseSeverityMap(c.CustomSeverityMap); err != nil {
		return s, err
	}
	if s.dropPrio, err = event.ParsePriority(c.DropEventDefaultPriority); err != nil || s.dropPrio == event.Default {
		return s, fmt.Errorf("alertmanager.dropeventdefaultpriority must be one of %s, got %q", event.PriorityNames, c.DropEventDefaultPriority)
	}
	if s.thresholds, err = ParseThresholds(c.DropEventThresholds); err != nil {
		return s, err
	}
	for name := range c.ExtraLabels {
		if !validLabelName(name) {
			return s, fmt.Errorf("alertmanager.extralabels: %q is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)", name)
		}
	}
	return s, outputs.CheckHeaders("alertmanager.customheaders", c.CustomHeaders)
}

func init() {
	s := outputs.Define("alertmanager", "alertmanager", defaults,
		func(c *Config) bool { return len(c.HostPort) > 0 },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return New(c, env) })
	s.Doc = "post each event as an Alertmanager v2 alert to every instance in hostport"
	outputs.Register(s)
}

// Threshold raises a syscall-drop event whose n_drop* count is above Value to Priority.
type Threshold struct {
	Value    int64
	Priority event.Priority
}

// ParseThresholds reads falcosidekick's "10000:critical, 100:warning" syntax, returning the
// thresholds sorted from the highest value down (the first one exceeded wins).
func ParseThresholds(s string) ([]Threshold, error) {
	var out []Threshold
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		v, p, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("alertmanager.dropeventthresholds: %q is not count:priority", item)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("alertmanager.dropeventthresholds: %q: count must be a non-negative integer", item)
		}
		prio, err := event.ParsePriority(p)
		if err != nil || prio == event.Default {
			return nil, fmt.Errorf("alertmanager.dropeventthresholds: %q: priority must be one of %s", item, event.PriorityNames)
		}
		out = append(out, Threshold{Value: n, Priority: prio})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Value > out[j].Value })
	return out, nil
}

func parseSeverityMap(m map[string]string) (map[event.Priority]string, error) {
	out := make(map[event.Priority]string, len(m))
	for k, v := range m {
		p, err := event.ParsePriority(k)
		if err != nil || p == event.Default {
			return nil, fmt.Errorf("alertmanager.customseveritymap: key %q must be one of %s", k, event.PriorityNames)
		}
		out[p] = v
	}
	return out, nil
}

// defaultSeverity is falcosidekick's mapping of Falco priorities onto the severity label.
var defaultSeverity = map[event.Priority]string{
	event.Debug: "information", event.Informational: "information", event.Notice: "information",
	event.Warning: "warning", event.Error: "warning",
	event.Critical: "critical", event.Alert: "critical", event.Emergency: "critical",
}

// Alertmanager is the output.
type Alertmanager struct {
	urls       []string
	client     *httpout.Client
	severity   map[event.Priority]string
	dropPrio   event.Priority
	thresholds []Threshold
	expires    time.Duration
	extraL     map[string]string
	extraA     map[string]string
	generator  string
	now        func() time.Time
}

// New builds the output.
func New(c *Config, env outputs.Env) (*Alertmanager, error) {
	s, err := c.parse()
	if err != nil {
		return nil, err
	}
	if len(s.urls) == 0 {
		return nil, errors.New("alertmanager.hostport is empty")
	}
	client, err := env.HTTPClient(c.CheckCert, c.MutualTLS, c.CustomHeaders)
	if err != nil {
		return nil, fmt.Errorf("alertmanager: %w", err)
	}
	return &Alertmanager{urls: s.urls, client: client, severity: s.severity, dropPrio: s.dropPrio, thresholds: s.thresholds,
		expires: time.Duration(c.ExpiresAfter) * time.Second, extraL: c.ExtraLabels, extraA: c.ExtraAnnotations,
		generator: c.GeneratorURL, now: time.Now}, nil
}

// Name implements delivery.Output.
func (a *Alertmanager) Name() string { return "alertmanager" }

// Alert is one Alertmanager v2 postable alert.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Payload builds the JSON body for ev: a list holding one alert.
func (a *Alertmanager) Payload(ev *event.Event) ([]byte, error) {
	ev = outputs.TruncateLongFields(ev)
	b, err := marshal([]Alert{a.alert(ev)})
	if err != nil {
		return nil, delivery.Permanent(fmt.Errorf("alertmanager: encode alert: %w", err))
	}
	return b, nil
}

func (a *Alertmanager) alert(ev *event.Event) Alert {
	labels := make(map[string]string, len(ev.OutputFields)+8+len(a.extraL))
	prio := ev.Priority
	for name, v := range ev.OutputFields {
		if strings.HasPrefix(name, "n_evts") {
			continue // a per-second delta: a label would make every alert unique
		}
		value, ok := event.LabelText(v)
		if !ok || value == "" {
			continue
		}
		label := SafeLabel(name)
		if label == "" {
			continue
		}
		if strings.HasPrefix(name, "n_drop") {
			if n, err := strconv.ParseInt(value, 10, 64); err == nil {
				value, prio = a.bucketDrops(n, prio)
			}
		}
		labels[label] = value
	}
	labels["source"] = "falco"
	labels["rule"] = ev.Rule
	labels["alertname"] = ev.Rule
	labels["eventsource"] = ev.Source
	if ev.Hostname != "" {
		labels["hostname"] = ev.Hostname
	}
	if len(ev.Tags) > 0 {
		tags := append([]string(nil), ev.Tags...)
		sort.Strings(tags)
		labels["tags"] = strings.Join(tags, ",")
	}
	labels["priority"] = prio.String()
	if s, ok := a.severity[prio]; ok {
		labels["severity"] = s
	} else {
		labels["severity"] = defaultSeverity[prio]
	}
	for k, v := range a.extraL {
		labels[k] = v
	}
	for k, v := range labels {
		if v == "" {
			delete(labels, k) // an empty label is no label to Alertmanager
		}
	}
	ann := map[string]string{"info": ev.Output, "description": ev.Output, "summary": ev.Rule}
	for k, v := range a.extraA {
		ann[k] = v
	}
	now := a.now().UTC()
	al := Alert{Labels: labels, Annotations: ann, StartsAt: ev.Time}
	if ev.Time.After(now) {
		al.StartsAt = now // a sender's clock ahead of ours must not make endsAt precede startsAt
	}
	if a.expires > 0 {
		al.EndsAt = now.Add(a.expires)
	}
	if a.generator != "" {
		r := strings.NewReplacer("{uuid}", url.PathEscape(ev.UUID), "{rule}", url.QueryEscape(ev.Rule))
		al.GeneratorURL = r.Replace(a.generator)
	}
	return al
}

// bucketDrops replaces a syscall-drop count by its threshold bucket (">10000") so alerts of
// the same kind group together, raising the priority as falcosidekick does. A zero count
// changes nothing.
func (a *Alertmanager) bucketDrops(n int64, prio event.Priority) (string, event.Priority) {
	if n <= 0 {
		return strconv.FormatInt(n, 10), prio
	}
	for _, t := range a.thresholds {
		if n > t.Value {
			return ">" + strconv.FormatInt(t.Value, 10), max(prio, t.Priority)
		}
	}
	return strconv.FormatInt(n, 10), max(prio, a.dropPrio)
}

// Send posts the alert to every instance at once. The send fails when any instance failed;
// the retry posts to all of them again, which Alertmanager deduplicates (same label set).
// The error is permanent only when every failure is.
func (a *Alertmanager) Send(ctx context.Context, ev *event.Event) error {
	body, err := a.Payload(ev)
	if err != nil {
		return err
	}
	errs := make([]error, len(a.urls))
	var wg sync.WaitGroup
	for i, u := range a.urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.client.Send(ctx, httpout.Request{URL: u, ContentType: "application/json; charset=utf-8", Body: body})
		}()
	}
	wg.Wait()
	var failed []error
	allPermanent := true
	var hint time.Duration
	for _, e := range errs {
		if e == nil {
			continue
		}
		failed = append(failed, e)
		allPermanent = allPermanent && delivery.IsPermanent(e)
		if d, ok := delivery.RetryAfterHint(e); ok && d > hint {
			hint = d
		}
	}
	if len(failed) == 0 {
		return nil
	}
	err = fmt.Errorf("alertmanager: %d of %d instances failed: %w", len(failed), len(a.urls), errors.Join(failed...))
	switch {
	case allPermanent:
		return delivery.Permanent(err)
	case hint > 0:
		return delivery.RetryAfter(err, hint)
	}
	return err
}

// SafeLabel turns an output field name into an Alertmanager label name as falcosidekick
// does: characters outside [a-zA-Z0-9_] become _, runs of _ collapse, leading and trailing _
// go; a name that would start with a digit gets a leading _.
func SafeLabel(name string) string {
	var b strings.Builder
	lastUnderscore := false
	for _, r := range name {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !ok || r == '_' {
			if !lastUnderscore {
				b.WriteByte('_')
			}
			lastUnderscore = true
			continue
		}
		b.WriteRune(r)
		lastUnderscore = false
	}
	s := strings.Trim(b.String(), "_")
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		s = "_" + s
	}
	return s
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// marshal encodes without escaping <>& (falcosidekick's \u003c escaping is a listed defect).
func marshal(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}
