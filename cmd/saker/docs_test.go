package main

import (
	"bytes"
	"os"
	"testing"
)

// TestConfigurationReferenceIsCurrent keeps docs/configuration-reference.md equal to what
// the code declares; run `make docs` after changing a key.
func TestConfigurationReferenceIsCurrent(t *testing.T) {
	var buf bytes.Buffer
	writeReference(&buf)
	committed, err := os.ReadFile("../../docs/configuration-reference.md")
	if err != nil {
		t.Fatalf("read the committed reference: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), committed) {
		t.Fatal("docs/configuration-reference.md is out of date: run `make docs`")
	}
}
