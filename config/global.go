package config

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// Global holds the top-level keys: listener, enrichment, TLS and lifecycle settings, named
// as falcosidekick names them where it has them.
type Global struct {
	ListenAddress     string            `koanf:"listenaddress" doc:"address the HTTP server listens on; empty for all interfaces"`
	ListenPort        int               `koanf:"listenport" doc:"port of the HTTP server (Falco's http_output and the audit webhook post here)"`
	Debug             bool              `koanf:"debug" doc:"log at debug level"`
	LogFormat         string            `koanf:"logformat" doc:"text or json"`
	MaxBodySize       int64             `koanf:"maxbodysize" doc:"largest accepted POST / body in bytes; larger gets 413"`
	ShutdownTimeout   time.Duration     `koanf:"shutdowntimeout" doc:"on SIGTERM, how long queues may drain before saker exits"`
	CustomFields      map[string]string `koanf:"customfields" doc:"fields added to every event's output_fields; a value %NAME reads environment variable NAME"`
	TemplatedFields   map[string]string `koanf:"templatedfields" doc:"fields computed by Go templates over output_fields"`
	CustomTags        []string          `koanf:"customtags" doc:"tags appended to every event"`
	BracketReplacer   string            `koanf:"bracketreplacer" doc:"replace [ in output_fields keys with this string (and drop ])"`
	OutputFieldFormat string            `koanf:"outputfieldformat" doc:"rewrite the output line: <timestamp> <priority> <output> <custom_fields> <templated_fields> <tags>"`

	MutualTLSFilesPath string          `koanf:"mutualtlsfilespath" doc:"folder of client.crt, client.key and ca.crt, for outputs with mutualtls"`
	MutualTLSClient    MutualTLSClient `koanf:"mutualtlsclient"`
	TLSClient          TLSClient       `koanf:"tlsclient"`
	TLSServer          TLSServer       `koanf:"tlsserver"`
	Auth               Auth            `koanf:"auth"`
	DeadLetter         DeadLetter      `koanf:"deadletter"`
	Metrics            Metrics         `koanf:"metrics"`
	Prometheus         Prometheus      `koanf:"prometheus"`
	Statsd             Statsd          `koanf:"statsd"`
	Dogstatsd          Dogstatsd       `koanf:"dogstatsd"`

	// MaxInFlightBodyBytes bounds the memory that concurrent large request bodies can take.
	MaxInFlightBodyBytes int64 `koanf:"maxinflightbodybytes" doc:"bytes of request bodies over 8 KiB read or handled at once, across listeners; past it 503 with Retry-After"`

	// DeliveryRound trades a few milliseconds of latency under load for CPU: see
	// delivery.Engine.DeliverInRounds.
	DeliveryRound time.Duration `koanf:"deliveryround" doc:"under load, queued events are handed to idle output workers in rounds at most this far apart, and the inputs wait while a round is delivered (at most 10 rounds' worth); an alert after a quiet spell goes out at once; 0: each event at once (in-memory queues only)"`
}

// Prometheus holds falcosidekick's prometheus keys.
type Prometheus struct {
	ExtraLabels string `koanf:"extralabels" doc:"comma-separated output_fields keys added as labels of falco_events_total (. becomes _)"`
}

// Statsd is falcosidekick's statsd section: saker's falcosidekick counters (requests,
// Falco events, deliveries) sent to a StatsD server, the tags folded into the names.
type Statsd struct {
	Forwarder string `koanf:"forwarder" doc:"StatsD server the counters are sent to: host:port (UDP), or unix:///path for a Unix socket; empty: off"`
	Namespace string `koanf:"namespace" doc:"prefix of every metric name"`
}

// Dogstatsd is falcosidekick's dogstatsd section: the same counters with DogStatsD tags.
type Dogstatsd struct {
	Forwarder string            `koanf:"forwarder" doc:"DogStatsD server (the Datadog agent) the counters are sent to: host:port (UDP), or unix:///path for a Unix socket; empty: off"`
	Namespace string            `koanf:"namespace" doc:"prefix of every metric name"`
	Tags      []string          `koanf:"tags" doc:"tags (key:value) added to every metric"`
	Tag       map[string]string `koanf:"tag" doc:"tags as a map, the form of falcosidekick's config_example.yaml (which falcosidekick ignored); added to tags as key:value"`
}

// AllTags are tags followed by tag's entries as key:value, sorted by key.
func (d Dogstatsd) AllTags() []string {
	out := slices.Clone(d.Tags)
	for _, k := range slices.Sorted(maps.Keys(d.Tag)) {
		out = append(out, k+":"+d.Tag[k])
	}
	return out
}

// MutualTLSClient overrides the files under mutualtlsfilespath.
type MutualTLSClient struct {
	CertFile   string `koanf:"certfile" doc:"client certificate for outputs with mutualtls"`
	KeyFile    string `koanf:"keyfile" doc:"client key for outputs with mutualtls"`
	CACertFile string `koanf:"cacertfile" doc:"CA of the servers outputs talk to"`
}

// TLSClient adds a CA for every output's server certificates.
type TLSClient struct {
	CACertFile string `koanf:"cacertfile" doc:"extra CA trusted by every output"`
}

// TLSServer serves the listener over TLS.
type TLSServer struct {
	Deploy     bool     `koanf:"deploy" doc:"serve HTTPS instead of HTTP"`
	CertFile   string   `koanf:"certfile" doc:"server certificate"`
	KeyFile    string   `koanf:"keyfile" doc:"server key"`
	MutualTLS  bool     `koanf:"mutualtls" doc:"require client certificates signed by cacertfile"`
	CACertFile string   `koanf:"cacertfile" doc:"CA for client certificates"`
	NoTLSPort  int      `koanf:"notlsport" doc:"with deploy, serve notlspaths over plain HTTP on this port; opened only when notlsport or notlspaths is set (0 or an empty notlspaths: off)"`
	NoTLSPaths []string `koanf:"notlspaths" doc:"paths served on notlsport"`
}

// Auth protects the inputs (POST /, POST /k8s-audit, POST /test) with a bearer token or HTTP
// basic credentials, alongside or instead of tlsserver.mutualtls.
type Auth struct {
	Token      string    `koanf:"token" secret:"true" doc:"bearer token the inputs require (Authorization: Bearer TOKEN); empty: no token"`
	TokenFile  string    `koanf:"tokenfile" doc:"file holding the bearer token (a mounted Kubernetes secret); surrounding blanks are ignored; exclusive with token"`
	Basic      BasicAuth `koanf:"basic"`
	ProtectAll bool      `koanf:"protectall" doc:"also require credentials on /healthz, /ping and /metrics"`
}

// BasicAuth is the HTTP basic alternative to the bearer token.
type BasicAuth struct {
	User     string `koanf:"user" doc:"HTTP basic user the inputs accept; set with password"`
	Password string `koanf:"password" secret:"true" doc:"HTTP basic password"`
}

// ResolveToken returns the bearer token, read from tokenfile when that is set.
func (a Auth) ResolveToken() (string, error) {
	if a.TokenFile == "" {
		return a.Token, nil
	}
	b, err := os.ReadFile(a.TokenFile)
	if err != nil {
		return "", fmt.Errorf("auth.tokenfile: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("auth.tokenfile: %s is empty", a.TokenFile)
	}
	return tok, nil
}

// DeadLetter configures the dead-letter file.
type DeadLetter struct {
	Path string `koanf:"path" doc:"JSON-lines file receiving events an output gave up on; empty: only counted and logged"`
}

// Metrics configures /metrics.
type Metrics struct {
	MaxEventSeries int `koanf:"maxeventseries" doc:"cap on falco_events_total label sets; later ones count as _other"`
}

// DefaultGlobal returns the defaults.
func DefaultGlobal() *Global {
	return &Global{
		ListenPort:         2801,
		LogFormat:          "text",
		MaxBodySize:        1 << 20,
		ShutdownTimeout:    10 * time.Second,
		MutualTLSFilesPath: "/etc/certs",
		TLSServer: TLSServer{
			CertFile: "/etc/certs/server/server.crt", KeyFile: "/etc/certs/server/server.key",
			CACertFile: "/etc/certs/server/ca.crt", NoTLSPort: 2810, NoTLSPaths: []string{"/ping"},
		},
		Metrics:   Metrics{MaxEventSeries: 2000},
		Statsd:    Statsd{Namespace: "falcosidekick."},
		Dogstatsd: Dogstatsd{Namespace: "falcosidekick."},

		MaxInFlightBodyBytes: 64 << 20,
		DeliveryRound:        10 * time.Millisecond,
	}
}

// Validate names the first invalid key.
func (g *Global) Validate() error {
	switch {
	case g.ListenPort < 1 || g.ListenPort > 65535:
		return fmt.Errorf("listenport must be 1-65535, got %d", g.ListenPort)
	case g.MaxBodySize <= 0:
		return fmt.Errorf("maxbodysize must be positive, got %d", g.MaxBodySize)
	case g.ShutdownTimeout <= 0:
		return fmt.Errorf("shutdowntimeout must be positive, got %s", g.ShutdownTimeout)
	case g.LogFormat != "text" && g.LogFormat != "json":
		return fmt.Errorf("logformat must be text or json, got %q", g.LogFormat)
	case g.TLSServer.NoTLSPort < 0 || g.TLSServer.NoTLSPort > 65535:
		return fmt.Errorf("tlsserver.notlsport must be 0-65535, got %d", g.TLSServer.NoTLSPort)
	case g.MaxInFlightBodyBytes <= 0:
		return fmt.Errorf("maxinflightbodybytes must be positive, got %d", g.MaxInFlightBodyBytes)
	case g.DeliveryRound < 0 || g.DeliveryRound > time.Second:
		return fmt.Errorf("deliveryround must be 0-1s, got %s", g.DeliveryRound)
	case g.Auth.Token != "" && g.Auth.TokenFile != "":
		return fmt.Errorf("auth.token and auth.tokenfile are exclusive: set one")
	case (g.Auth.Basic.User == "") != (g.Auth.Basic.Password == ""):
		return fmt.Errorf("auth.basic.user and auth.basic.password must be set together")
	case g.Auth.ProtectAll && g.Auth.Token == "" && g.Auth.TokenFile == "" && g.Auth.Basic.User == "":
		return fmt.Errorf("auth.protectall needs auth.token, auth.tokenfile or auth.basic")
	case g.Metrics.MaxEventSeries <= 0:
		return fmt.Errorf("metrics.maxeventseries must be positive, got %d", g.Metrics.MaxEventSeries)
	}
	return nil
}
