package main

import (
	"errors"
	"log/slog"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/delivery/jetstream"
)

// busConfigError checks the bus keys (spool, bus.jetstream): at most one durable mode, each
// valid.
func (lc *loadedConfig) busConfigError() error {
	switch {
	case lc.spool.Path != "" && lc.external.URL != "":
		return errors.New("spool.path and bus.jetstream.url are both set: choose the embedded spool or an external NATS server")
	case lc.spool.Path != "":
		return lc.spool.Validate()
	case lc.external.URL != "":
		return lc.external.Validate()
	}
	return nil
}

// openBus returns the configured bus and what to run once the engine stopped: the memory bus
// by default, the embedded spool with spool.path, an external JetStream with bus.jetstream.url
// (also returned as shared: the bus the replicas' UIs share their events on).
func (lc *loadedConfig) openBus(log *slog.Logger) (bus delivery.Bus, shared *jetstream.Bus, closeBus func(), err error) {
	if err := lc.busConfigError(); err != nil {
		return nil, nil, nil, err
	}
	switch {
	case lc.spool.Path != "":
		b, err := jetstream.OpenEmbedded(lc.spool, log)
		if err != nil {
			// Exiting would have the service manager (systemd, the kubelet) restart saker
			// over and over on a spool only an operator can fix; starting empty over it would
			// lose what it stores. saker runs, refuses every event and says why.
			log.Error("the spool cannot be opened: saker accepts no event (the inputs answer 503) and delivers nothing until it is fixed and saker restarted",
				"path", lc.spool.Path, "err", err)
			return delivery.NewFailedBus("embedded", err), nil, func() {}, nil
		}
		log.Info("durable delivery on the embedded spool", "path", lc.spool.Path, "maxbytes", lc.spool.MaxBytes, "sync", lc.spool.Sync)
		return b, nil, b.Shutdown, nil
	case lc.external.URL != "":
		b, err := jetstream.OpenExternal(lc.external, log)
		if err != nil {
			return nil, nil, nil, err
		}
		log.Info("durable delivery on external JetStream", "stream", lc.external.Stream)
		return b, b, b.Shutdown, nil
	}
	return delivery.NewMemoryBus(), nil, func() {}, nil
}
