package webui

import (
	"errors"
	"fmt"
	"time"
)

// Config is the ui section: the event store behind the web UI and its API, and the UI's own
// listener and credentials.
type Config struct {
	Enabled       bool      `koanf:"enabled" doc:"store every alert and serve the web UI (/ui/) and its API (/api/v1/)"`
	ListenAddress string    `koanf:"listenaddress" doc:"address of the optional dedicated UI listener; empty: listenaddress"`
	ListenPort    int       `koanf:"listenport" doc:"port of a dedicated listener serving only the UI and its API (falcosidekick-ui's 2802); 0: the main listener only"`
	QueueSize     int       `koanf:"queuesize" doc:"alerts waiting to be stored; past it an alert is not stored (counted in saker_ui_store_dropped_total), never delaying the inputs"`
	Storage       Storage   `koanf:"storage"`
	Retention     Retention `koanf:"retention"`
	Auth          Auth      `koanf:"auth"`
}

// Storage says where the events are kept.
type Storage struct {
	Path string `koanf:"path" doc:"file (bbolt) holding the stored alerts across restarts; empty: in memory only"`
}

// Retention bounds the store; both limits apply continuously.
type Retention struct {
	MaxAge    time.Duration `koanf:"maxage" doc:"alerts stored longer ago than this are dropped (Go duration: 168h is 7 days)"`
	MaxEvents int           `koanf:"maxevents" doc:"past this many alerts the oldest are dropped"`
}

// Auth are credentials for the UI and its API instead of the inputs' (auth.*). With neither
// set, the UI is open: saker has no default password.
type Auth struct {
	Token string    `koanf:"token" secret:"true" doc:"bearer token the UI and its API require; empty: auth.* applies"`
	Basic BasicAuth `koanf:"basic"`
}

// BasicAuth is the browser-friendly alternative to the token.
type BasicAuth struct {
	User     string `koanf:"user" doc:"HTTP basic user of the UI; set with password"`
	Password string `koanf:"password" secret:"true" doc:"HTTP basic password of the UI"`
}

// Set reports whether UI credentials are configured.
func (a Auth) Set() bool { return a.Token != "" || a.Basic.User != "" }

// DefaultConfig returns the defaults: on, in memory, 7 days and a million alerts.
func DefaultConfig() *Config {
	return &Config{Enabled: true, QueueSize: 10000, Retention: Retention{MaxAge: 7 * 24 * time.Hour, MaxEvents: 1_000_000}}
}

// Validate names the key at fault.
func (c *Config) Validate() error {
	switch {
	case c.ListenPort < 0 || c.ListenPort > 65535:
		return fmt.Errorf("ui.listenport must be 0-65535, got %d", c.ListenPort)
	case c.QueueSize <= 0:
		return fmt.Errorf("ui.queuesize must be positive, got %d", c.QueueSize)
	case c.Retention.MaxAge <= 0:
		return fmt.Errorf("ui.retention.maxage must be positive, got %s", c.Retention.MaxAge)
	case c.Retention.MaxEvents <= 0:
		return fmt.Errorf("ui.retention.maxevents must be positive, got %d", c.Retention.MaxEvents)
	case (c.Auth.Basic.User == "") != (c.Auth.Basic.Password == ""):
		return errors.New("ui.auth.basic.user and ui.auth.basic.password must be set together")
	}
	return nil
}
