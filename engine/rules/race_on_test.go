//go:build race

package rules

// raceEnabled: sync.Pool drops items under the race detector, so pooled paths allocate.
const raceEnabled = true
