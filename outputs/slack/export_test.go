package slack

// DefaultsForTest exposes the section defaults to the external tests.
func DefaultsForTest() *Config { return defaults() }
