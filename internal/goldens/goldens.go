// Package goldens helps tests compare saker's payloads with falcosidekick's recorded ones
// in ../shared/falcosidekick-goldens.
package goldens

import "time"

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
