// Package outputs is the catalogue of destinations. Each destination is a small package
// under outputs/ that registers a Spec in its init function; outputs/all imports them all.
// An output only says how to send an event or a batch: queues, retries, timeouts, batching
// and TLS policy come from the delivery engine and httpout.
package outputs

import (
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"sync"

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
	// Version is saker's version, for user agents and message footers.
	Version string
}

// HTTPClient builds the shared HTTP client for an output: falcosidekick's checkcert,
// mutualtls and customheaders keys map onto these arguments.
func (e Env) HTTPClient(checkCert, mutualTLS bool, headers map[string]string) (*httpout.Client, error) {
	return httpout.New(e.HTTPOptions(checkCert, mutualTLS, headers))
}

// HTTPOptions are the options HTTPClient uses, for outputs that adjust them (pipelining).
func (e Env) HTTPOptions(checkCert, mutualTLS bool, headers map[string]string) httpout.Options {
	return httpout.Options{CheckCert: checkCert, MutualTLS: mutualTLS, TLS: e.TLS,
		Headers: headers, MaxConns: e.Policy.MaxConcurrentRequests}
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
type Alias struct {
	Path string // full key path
	Type string // value type, for the reference docs
	Doc  string
	// Expand returns the canonical key paths and values the alias's value stands for.
	Expand func(value string) (map[string]any, error)
}

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

// ValidateURL checks that value is an absolute http(s) URL, naming key otherwise. The value
// is printed without credentials.
func ValidateURL(key, value string) error {
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s must be an http:// or https:// URL, got %q", key, httpout.Redact(value))
	}
	return nil
}
