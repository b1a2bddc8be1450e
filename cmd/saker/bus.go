package main

import (
	"errors"
	"log/slog"

	"github.com/saker-dev/saker/config"
	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/delivery/jetstream"
)

// The durable bus's sections: spool (embedded JetStream) and bus.jetstream (external).
var (
	spoolCfg    *jetstream.SpoolConfig
	externalCfg *jetstream.ExternalConfig
)

func init() {
	extraSections = append(extraSections,
		func() config.Section {
			spoolCfg = jetstream.DefaultSpoolConfig()
			return config.Section{Path: "spool", Target: spoolCfg}
		},
		func() config.Section {
			externalCfg = jetstream.DefaultExternalConfig()
			return config.Section{Path: "bus.jetstream", Target: externalCfg}
		})
}

// busConfigError checks the bus keys: at most one durable mode, each valid.
func busConfigError() error {
	switch {
	case spoolCfg.Path != "" && externalCfg.URL != "":
		return errors.New("spool.path and bus.jetstream.url are both set: choose the embedded spool or an external NATS server")
	case spoolCfg.Path != "":
		return spoolCfg.Validate()
	case externalCfg.URL != "":
		return externalCfg.Validate()
	}
	return nil
}

// openBus returns the configured bus and what to run once the engine stopped: the memory bus
// by default, the embedded spool with spool.path, an external JetStream with bus.jetstream.url.
func openBus(log *slog.Logger) (delivery.Bus, func(), error) {
	if err := busConfigError(); err != nil {
		return nil, nil, err
	}
	switch {
	case spoolCfg.Path != "":
		b, err := jetstream.OpenEmbedded(spoolCfg, log)
		if err != nil {
			// Exiting would have the service manager (systemd, the kubelet) restart saker
			// over and over on a spool only an operator can fix; starting empty over it would
			// lose what it stores. saker runs, refuses every event and says why.
			log.Error("the spool cannot be opened: saker accepts no event (the inputs answer 503) and delivers nothing until it is fixed and saker restarted",
				"path", spoolCfg.Path, "err", err)
			return delivery.NewFailedBus("embedded", err), func() {}, nil
		}
		log.Info("durable delivery on the embedded spool", "path", spoolCfg.Path, "maxbytes", spoolCfg.MaxBytes, "sync", spoolCfg.Sync)
		return b, b.Shutdown, nil
	case externalCfg.URL != "":
		b, err := jetstream.OpenExternal(externalCfg, log)
		if err != nil {
			return nil, nil, err
		}
		log.Info("durable delivery on external JetStream", "stream", externalCfg.Stream)
		return b, b.Shutdown, nil
	}
	return delivery.NewMemoryBus(), func() {}, nil
}
