// Package goldens helps tests compare saker's payloads with falcosidekick's recorded ones
// in ../shared/falcosidekick-goldens.
package goldens

import (
	"os"
	"path/filepath"
	"time"
)

// NormalizeTime rewrites a decoded payload's "time" value to one spelling of the same
// instant. saker writes Falco's nine fractional digits ("…:00.000000000Z") where
// falcosidekick's Go encoding trims them ("…:00Z"); both are the same RFC 3339 time.
func NormalizeTime(m map[string]any) {
	s, ok := m["time"].(string)
	if !ok {
		return
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		m["time"] = t.UTC().Format(time.RFC3339Nano)
	}
}

// SharedDir is the read-only test data folder that sits beside the checkout (../shared from
// the module root), or $SAKER_SHARED when set.
func SharedDir() string {
	if d := os.Getenv("SAKER_SHARED"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return filepath.Join("..", "shared")
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return filepath.Join("..", "shared")
		}
		dir = parent
	}
}
