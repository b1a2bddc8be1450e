package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saker-dev/saker/engine/delivery/jetstream"
	"github.com/saker-dev/saker/engine/httpin"
	"github.com/saker-dev/saker/engine/pipeline"
	"github.com/saker-dev/saker/engine/store"
	"github.com/saker-dev/saker/engine/webui"
)

func init() {
	startHooks = append(startHooks, startUI)
}

// uiCredentials are ui.auth.* when set, else the inputs' auth.*: the UI shows every alert,
// so it is never more open than the inputs, and there is no default password.
func uiCredentials(a *app) (httpin.Credentials, error) {
	uiCfg := a.cfg.ui
	if uiCfg.Auth.Set() {
		return httpin.Credentials{Token: uiCfg.Auth.Token, BasicUser: uiCfg.Auth.Basic.User, BasicPassword: uiCfg.Auth.Basic.Password}, nil
	}
	g := a.cfg.global.Auth
	token, err := g.ResolveToken()
	if err != nil {
		return httpin.Credentials{}, err
	}
	return httpin.Credentials{Token: token, BasicUser: g.Basic.User, BasicPassword: g.Basic.Password}, nil
}

// startUI opens the event store, records every accepted alert in it and serves the UI and
// its API on the main listener and, with ui.listenport, on a dedicated one.
// The ui section is read at start: a reload does not change it.
func startUI(a *app) error {
	uiCfg := a.cfg.ui
	if !uiCfg.Enabled {
		return nil
	}
	log := a.log.With("component", "ui")
	st, err := store.Open(store.Options{Path: uiCfg.Storage.Path, MaxAge: uiCfg.Retention.MaxAge,
		MaxEvents: uiCfg.Retention.MaxEvents, QueueSize: uiCfg.QueueSize, Log: log})
	if err != nil {
		return err
	}
	creds, err := uiCredentials(a)
	if err != nil {
		st.Close()
		return err
	}
	record, err := recordEvents(a, st, log)
	if err != nil {
		st.Close()
		return err
	}
	ui := webui.New(webui.Options{Store: st, Record: record.Offer, Health: a.engine.Health, Log: log})
	h := httpin.Protect(creds, ui)
	for _, p := range []string{"/api/v1/", "/ui/", "/ui"} {
		a.server.HandleSelfAuthenticated(p, h)
	}
	reg := a.metrics.Registry
	if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "saker_ui_store_events",
		Help: "Alerts held by the UI's event store."}, func() float64 { return float64(st.Stats().Events) })); err != nil {
		return err
	}
	if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "saker_ui_store_dropped_total",
		Help: "Alerts not stored because the UI store's queue (ui.queuesize) was full."}, func() float64 { return float64(st.Dropped()) })); err != nil {
		return err
	}
	where := "memory"
	if uiCfg.Storage.Path != "" {
		where = uiCfg.Storage.Path
	}
	log.Info("web UI on /ui/", "storage", where, "maxage", uiCfg.Retention.MaxAge, "maxevents", uiCfg.Retention.MaxEvents,
		"auth", creds.Enabled())
	a.beforeShutdown = append(a.beforeShutdown, ui.Close)
	followStoreMemory(a, st)
	if uiCfg.ListenPort > 0 {
		if err := startUIListener(a, h, log); err != nil {
			st.Close()
			return err
		}
	}
	a.stops = append(a.stops, func() {
		if err := st.Close(); err != nil {
			log.Error("closing the UI store", "err", err)
		}
	})
	return nil
}

// recordEvents has the pipeline record every accepted alert in st: directly, or on external
// JetStream through the feed every replica reads back, so each replica's UI shows them all.
// It returns where the UI's own intake (POST /api/v1/) records. The feed stops before st
// closes.
func recordEvents(a *app, st *store.Store, log *slog.Logger) (pipeline.Recorder, error) {
	if a.sharedBus == nil {
		a.pipeline.SetRecorder(st)
		return st, nil
	}
	uiCfg := a.cfg.ui
	feed, err := a.sharedBus.FeedUI(st, jetstream.UIRetention{MaxAge: uiCfg.Retention.MaxAge, MaxEvents: uiCfg.Retention.MaxEvents})
	if err != nil {
		return nil, err
	}
	if err := a.metrics.Registry.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "saker_ui_feed_failed_total",
		Help: "Alerts the UI feed shared by the replicas (external JetStream) could not publish or the server refused."},
		func() float64 { return float64(feed.Failed()) })); err != nil {
		feed.Close()
		return nil, err
	}
	a.pipeline.SetRecorder(feed)
	a.stops = append(a.stops, feed.Close)
	log.Info("web UI fed through the shared JetStream feed: every replica shows every replica's alerts")
	return feed, nil
}

// startUIListener opens ui.listenport, serving only the UI and its API, with the main
// listener's body limits and TLS.
func startUIListener(a *app, h http.Handler, log *slog.Logger) error {
	uiCfg := a.cfg.ui
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", h)
	mux.Handle("/ui/", h)
	mux.Handle("/ui", h)
	mux.Handle("/{$}", http.RedirectHandler("/ui/", http.StatusFound))
	addr := uiCfg.ListenAddress
	if addr == "" {
		addr = a.cfg.global.ListenAddress
	}
	addr = net.JoinHostPort(addr, strconv.Itoa(uiCfg.ListenPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ui listener on %s: %w", addr, err)
	}
	ts := a.cfg.global.TLSServer
	if ts.Deploy {
		tlsCfg, err := serverTLS(ts)
		if err != nil {
			ln.Close()
			return err
		}
		ln = httpin.TLSListener(ln, tlsCfg)
	}
	srv := &http.Server{Handler: a.server.LimitBodies(mux), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: httpin.ReadTimeout, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("ui listener stopped", "err", err)
		}
	}()
	log.Info("ui listener", "addr", ln.Addr().String(), "tls", ts.Deploy)
	a.stops = append(a.stops, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return nil
}

// gcBaseLimit is the soft memory limit tuneGC set (0: GOMEMLIMIT from the environment,
// left alone).
var gcBaseLimit int64

// storeMemory is what the UI store holds in the heap: its index (32 bytes an alert, plus the
// bloom filters and dictionaries: 48 bytes in all) and, without ui.storage.path, the
// compressed alerts themselves. It is added to the soft memory limit as live data: the
// headroom for garbage stays the 64 MiB tuneGC gives the rest of saker.
func storeMemory(st store.Stats, inMemory bool) int64 {
	n := int64(st.Events) * 48
	if inMemory {
		n += st.Bytes
	}
	return n
}

// followStoreMemory raises the soft memory limit with the store's size, every few seconds:
// a limit sized for a full store (a million alerts) from the start would let the heap grow
// that much with garbage long before the store holds anything.
func followStoreMemory(a *app, st *store.Store) {
	if gcBaseLimit == 0 {
		return
	}
	inMemory := a.cfg.ui.Storage.Path == ""
	set := func() { debug.SetMemoryLimit(gcBaseLimit + storeMemory(st.Stats(), inMemory)) }
	set()
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				set()
			case <-done:
				return
			}
		}
	}()
	a.stops = append(a.stops, func() { close(done); <-stopped })
}
