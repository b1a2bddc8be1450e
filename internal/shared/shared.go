// Package shared locates the read-only test data that sits beside the checkout
// (../shared from the module root: Falco events, falcosidekick's recorded payloads, the
// k8s_audit corpus). It imports nothing of saker's, so any package's tests can use it.
package shared

import (
	"os"
	"path/filepath"
)

// Dir is ../shared from the module root, or $SAKER_SHARED when set.
func Dir() string {
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
