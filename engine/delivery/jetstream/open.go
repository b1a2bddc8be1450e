package jetstream

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/engine/tlsconf"
)

// OpenEmbedded starts a NATS server inside the process with its JetStream store under
// cfg.Path and connects to it in-process. A spool the server cannot load is an error naming
// the path and the reason: saker never starts empty over stored events.
func OpenEmbedded(cfg *SpoolConfig, log *slog.Logger) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	where := "spool " + cfg.Path
	if err := os.MkdirAll(cfg.Path, 0o700); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	// Whether an earlier run left a stream here: then it must load.
	_, statErr := os.Stat(filepath.Join(cfg.Path, "jetstream", "$G", "streams", DefaultStream))
	existed := statErr == nil
	always, every, _ := cfg.syncPolicy()
	opts := &server.Options{
		ServerName:         "saker-spool",
		JetStream:          true,
		StoreDir:           cfg.Path,
		SyncAlways:         always,
		SyncInterval:       every,
		DontListen:         cfg.Listen == "",
		NoSigs:             true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 64 << 20,
	}
	if cfg.Listen != "" {
		host, port, _ := splitListen(cfg.Listen)
		if port == 0 {
			port = server.RANDOM_PORT // nats-server reads 0 as its default port, 4222
		}
		opts.Host, opts.Port = host, port
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: embedded NATS server: %w", where, err)
	}
	logs := &serverLog{log: log.With("component", "spool")}
	srv.SetLoggerV2(logs, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("%s: the embedded NATS server did not start within 30s (%s)", where, logs.lastError())
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("%s: JetStream could not open its store (%s)", where, logs.lastError())
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("saker"), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("%s: connect to the embedded NATS server: %w", where, err)
	}
	b, err := open(nc, "embedded", where, DefaultStream, cfg.MaxBytes, 1, cfg.AckWait, existed, log)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		if last := logs.lastError(); last != noServerError {
			err = fmt.Errorf("%w (server: %s)", err, last)
		}
		return nil, err
	}
	b.shutdown = func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	if cfg.Listen != "" {
		log.Info("embedded NATS server listening", "addr", srv.Addr().String())
	}
	return b, nil
}

// OpenExternal connects to the NATS server(s) of cfg.URL and sets up the shared stream. A
// server not reachable yet does not stop start-up: the stream and consumers are set up once
// it is, and until then, as during a later outage, the inputs answer 503. Authentication and
// TLS errors do stop it.
func OpenExternal(cfg *ExternalConfig, log *slog.Logger) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	where := "NATS " + redactURL(cfg.URL)
	opts := []nats.Option{
		nats.Name("saker"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// No buffering while disconnected: a publish then fails at once and the input
		// answers 503, instead of answering 200 for an event only held in memory.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("NATS connection lost; inputs answer 503 until it is back", "server", where, "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS connection back", "server", redactURL(nc.ConnectedUrl()))
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("bus.jetstream.nkeyfile %s: %w", cfg.NKeyFile, err)
		}
		opts = append(opts, o)
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.TLS.CACertFile != "" || cfg.TLS.CertFile != "" {
		tc, err := tlsconf.Client(true, tlsconf.Files{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, CACertFile: cfg.TLS.CACertFile,
			CertKey: "bus.jetstream.tls.certfile", CAKey: "bus.jetstream.tls.cacertfile"})
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if errors.Is(err, nats.ErrNoServers) {
		// Start even when NATS is down: the inputs answer 503 until it is reachable. Other
		// errors (authentication, TLS) are configuration mistakes and stop start-up.
		nc, err = nats.Connect(cfg.URL, append(opts, nats.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", where, err)
	}
	b, err := open(nc, "external", where, cfg.Stream, cfg.MaxBytes, cfg.Replicas, cfg.AckWait, false, log)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

// redactURL drops user information from NATS URLs (comma-separated) for logs and errors.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		parts[i] = httpout.Redact(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// serverLog sends the embedded server's log to slog and remembers its last error, so a spool
// that cannot be opened is reported with the server's reason.
type serverLog struct {
	log  *slog.Logger
	mu   sync.Mutex
	last error
}

func (l *serverLog) remember(msg string) {
	l.mu.Lock()
	l.last = errors.New(msg)
	l.mu.Unlock()
}

// noServerError is lastError's answer when the server logged no warning or error.
const noServerError = "no error logged by the server"

func (l *serverLog) lastError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		return noServerError
	}
	return l.last.Error()
}

func (l *serverLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Tracef(format string, v ...any)  {}
func (l *serverLog) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.remember(msg)
	l.log.Warn(msg)
}
func (l *serverLog) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.remember(msg)
	l.log.Error(msg)
}
func (l *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.remember(msg)
	l.log.Error(msg)
}
