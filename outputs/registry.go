// Package outputs is the catalogue of destinations. Each destination is a small package
// under outputs/ that registers a Spec in its init function; outputs/all imports them all.
// An output only says how to send an event or a batch: queues, retries, timeouts, batching
// and TLS policy come from the delivery engine and httpout.
package outputs

import (
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/saker-dev/saker/config"
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/httpout"
)

// Env is what an output's constructor receives besides its own configuration.
type Env struct {
	Log *slog.Logger
	// Policy is the output's effective delivery policy (concurrency sizes connection pools).
	Policy delivery.Policy
	// TLS locates the client certificate files shared by all outputs (mutualtls, custom CA).
	TLS httpout.TLSFiles
	// Outputs names every enabled output, for outputs that report where events go (the
	// Falcosidekick UI shows it with each event).
	Outputs []string
	// CustomFields and TemplatedFields name the customfields and templatedfields keys (sorted),
	// which the enrichment adds to every event's output_fields: outputs that give them a
	// place of their own (TimescaleDB columns, OTLP metric attributes) find them there.
	CustomFields, TemplatedFields []string
}

// Logger returns the output's logger: Log, which the daemon tags with the output's name and
// wraps with its secrets' redaction, or the default logger when Log is unset (tests).
func (e Env) Logger() *slog.Logger {
	if e.Log == nil {
		return slog.Default()
	}
	return e.Log
}

// HTTPClient builds the shared HTTP client for an output: falcosidekick's checkcert,
// mutualtls and customheaders keys map onto these arguments.
func (e Env) HTTPClient(checkCert, mutualTLS bool, headers map[string]string) (*httpout.Client, error) {
	return httpout.New(httpout.Options{CheckCert: checkCert, MutualTLS: mutualTLS, TLS: e.TLS,
		Headers: headers, MaxConns: e.Policy.MaxConcurrentRequests})
}

// Spec declares one output: its name, where its keys live, when it is enabled and how to
// build it. Config returns a pointer to a fresh struct holding the defaults; its `koanf`
// tags define the keys under Section (see package config).
type Spec struct {
	// Name identifies the output: metrics destination label, /healthz, POST /test?output=.
	Name string
	// Section is the key path of its configuration ("slack", "aws"; several specs may share
	// one, like aws.sqs and aws.sns share aws.region).
	Section string
	// PolicyPath is where its delivery keys (minimumpriority, queuesize, retry.*) live;
	// default Section.
	PolicyPath string
	Config     func() any
	Enabled    func(cfg any) bool
	Build      func(cfg any, env Env) (delivery.Output, error)
	// Batch holds the output's default batching (zero for outputs that send one at a time).
	Batch delivery.BatchPolicy
	// Concurrency, when set, replaces the engine's default maxconcurrentrequests for this
	// output unless the user set the top-level or the output's own key.
	Concurrency int
	// Doc is a one-line description for the docs and `saker outputs`.
	Doc string
	// Aliases are keys accepted under falcosidekick's names for this output's settings.
	Aliases []Alias
}

// Alias is another name for keys of an output, such as falcosidekick's
// elasticsearch.batching.batchsize for elasticsearch.batch.maxbytes.
type Alias = config.Alias

// Define builds a Spec from typed functions, so output packages need no type assertions.
func Define[C any](name, section string, defaults func() *C, enabled func(*C) bool,
	build func(*C, Env) (delivery.Output, error)) Spec {
	return Spec{
		Name:    name,
		Section: section,
		Config:  func() any { return defaults() },
		Enabled: func(cfg any) bool { return enabled(cfg.(*C)) },
		Build:   func(cfg any, env Env) (delivery.Output, error) { return build(cfg.(*C), env) },
	}
}

var (
	mu       sync.Mutex
	registry = map[string]Spec{}
)

// Register adds a spec; it panics on a duplicate name, which is a programming error caught
// by any test that imports outputs/all.
func Register(s Spec) {
	mu.Lock()
	defer mu.Unlock()
	if s.PolicyPath == "" {
		s.PolicyPath = s.Section
	}
	if _, dup := registry[s.Name]; dup {
		panic(fmt.Sprintf("output %q registered twice", s.Name))
	}
	registry[s.Name] = s
}

// All returns every registered spec sorted by name.
func All() []Spec {
	mu.Lock()
	defer mu.Unlock()
	out := make([]Spec, 0, len(registry))
	for _, s := range registry {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Regional holds the keys of a SaaS output reached by region (opsgenie, pagerduty): the
// account's region, an endpoint replacing the region's address, and the TLS switches. The
// output's Config embeds it with `koanf:",squash"`, so the keys sit in its section.
type Regional struct {
	Region    string `koanf:"region" doc:"us or eu: the service region the account is in"`
	Endpoint  string `koanf:"endpoint" doc:"API URL replacing the region's (a proxy, a test endpoint); empty: the region's"`
	CheckCert bool   `koanf:"checkcert" doc:"verify the server's TLS certificate"`
	MutualTLS bool   `koanf:"mutualtls" doc:"present the client certificate (mutualtlsclient.*)"`
}

// DefaultRegional is falcosidekick's default: the us region, certificates checked.
func DefaultRegional() Regional { return Regional{Region: "us", CheckCert: true} }

// URL is the API address: Endpoint when set, otherwise the address of Region in byRegion
// (see RegionURL).
func (r Regional) URL(section string, byRegion map[string]string) (string, error) {
	return RegionURL(section, r.Region, r.Endpoint, byRegion)
}

// Check is an output's Validate: the address is checked when the output is enabled (its
// key, the API or routing key, is set).
func (r Regional) Check(section, key string, byRegion map[string]string) error {
	if key == "" {
		return nil
	}
	_, err := r.URL(section, byRegion)
	return err
}

// RegionURL is the API address of a SaaS output: endpoint when set (a proxy, a test
// endpoint; it must be an http(s) URL), otherwise the address of region in byRegion. section
// names the keys in errors (section.endpoint, section.region).
func RegionURL(section, region, endpoint string, byRegion map[string]string) (string, error) {
	if endpoint != "" {
		return endpoint, ValidateURL(section+".endpoint", endpoint)
	}
	u, ok := byRegion[region]
	if !ok {
		names := make([]string, 0, len(byRegion))
		for r := range byRegion {
			names = append(names, r)
		}
		sort.Strings(names)
		return "", fmt.Errorf("%s.region must be one of %s, got %q", section, strings.Join(names, ", "), region)
	}
	return u, nil
}

// ValidateURL checks that value is an absolute http(s) URL, naming key otherwise. The value
// is printed without credentials, and not at all when it cannot be parsed.
func ValidateURL(key, value string) error {
	if !strings.Contains(value, "://") {
		return fmt.Errorf("%s: missing scheme http:// or https:// (a URL such as https://host:port/path is expected)", key)
	}
	u, err := url.Parse(value)
	if err != nil {
		return fmt.Errorf("%s is not a valid URL (value not shown: it may hold credentials)", key)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%s must be an http:// or https:// URL, got scheme %q", key, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%s must name a host (https://host:port/path)", key)
	}
	return nil
}

// CheckHeaders checks the customheaders of an output: every name must be a valid HTTP
// header name and every value a valid header value. Errors name the key and the header,
// never the value (headers carry credentials).
func CheckHeaders(key string, headers map[string]string) error {
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	sort.Strings(names) // the same header is named first on every run
	for _, name := range names {
		if !validHeaderName(name) {
			return fmt.Errorf("%s: %q is not a valid header name (expected name:value pairs, e.g. \"Authorization:Bearer xyz\")", key, printableName(name))
		}
		if !validHeaderValue(headers[name]) {
			return fmt.Errorf("%s: the value of header %q holds characters not allowed in a header (value not shown)", key, name)
		}
	}
	return nil
}

// printableName shortens a rejected header name for the error message: what looks like a
// name with its value glued on ("Authorization Bearer X") is cut at the first blank, so the
// credential part is not printed.
func printableName(name string) string {
	if i := strings.IndexAny(name, " \t"); i >= 0 {
		return name[:i] + " ..."
	}
	if len(name) > 40 {
		return name[:40] + "..."
	}
	return name
}

// validHeaderName reports whether name is an RFC 9110 token: letters, digits and
// !#$%&'*+-.^_`|~, at least one.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether value holds no control character but tab (a CR or LF
// would let a value inject headers).
func validHeaderValue(value string) bool {
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// Secrets returns what must never appear in the output's error texts, from the fields of its
// configuration struct cfg tagged `secret`, for delivery.NewRedactor:
//   - `secret:"true"`: the whole value (each value of a map, such as custom headers, and its
//     words: "Bearer TOKEN" also gives TOKEN); for a URL also its path, query and password,
//     which a receiver may echo alone ("Cannot POST /hooks/TOKEN");
//   - `secret:"url"`: a URL whose path, query and password may hold a token while its scheme
//     and host are not secret (webhook.address); `config check` still prints it.
func Secrets(cfg any) []string {
	var out []string
	collectSecrets(reflect.ValueOf(cfg), &out)
	return out
}

func collectSecrets(v reflect.Value, out *[]string) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		tag := f.Tag.Get("secret")
		switch {
		case fv.Kind() == reflect.Struct:
			collectSecrets(fv, out)
		case tag == "" || fv.IsZero():
		case fv.Kind() == reflect.String && tag == "url":
			*out = append(*out, delivery.SecretURLParts(fv.String())...)
		case fv.Kind() == reflect.String:
			*out = append(*out, fv.String())
			if u, err := url.Parse(fv.String()); err == nil && u.Host != "" {
				*out = append(*out, delivery.SecretURLParts(fv.String())...)
			}
		case fv.Kind() == reflect.Map && fv.Type().Elem().Kind() == reflect.String:
			for it := fv.MapRange(); it.Next(); {
				*out = append(*out, delivery.SecretHeaderParts(it.Value().String())...)
			}
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
			for j := 0; j < fv.Len(); j++ {
				*out = append(*out, fv.Index(j).String())
			}
		}
	}
}
