package main

import (
	"os"
	"testing"
)

// writeAtomic replaces file with body by a rename, as a Kubernetes ConfigMap update does, so
// a reload never reads it half written.
func writeAtomic(t *testing.T, file, body string) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}
