package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/testpeers"
)

// TestUIBrowser drives the pages in real headless Chromium (Debian's chromium, npm
// playwright-core, both installed by .ci/install-peers.sh): dashboard counts, filters in the
// query string and from the form, the detail page, escaping of markup and script in the rule,
// output and fields, the live update, export, the outputs page, a phone-sized viewport, and
// no request to another host. Screenshots are left in $SAKER_ARTIFACTS/ui (default: the
// system temp folder).
func TestUIBrowser(t *testing.T) {
	chromium := testpeers.Bin(t, "chromium")
	node := testpeers.Bin(t, "node")
	pw := filepath.Join(testpeers.Dir(), "playwright", "node_modules", "playwright-core")
	if _, err := os.Stat(filepath.Join(pw, "package.json")); err != nil {
		t.Fatalf("playwright-core not installed in %s: run .ci/install-peers.sh", pw)
	}
	shots := filepath.Join(os.Getenv("SAKER_ARTIFACTS"), "ui")
	if os.Getenv("SAKER_ARTIFACTS") == "" {
		shots = filepath.Join(os.TempDir(), "saker-ui-screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, nil)
	d := start(t, "WEBHOOK_ADDRESS="+s.srv.URL)
	d.mustPost(t, uiEvent("Browser Rule Alpha", "Critical", "alpha on /bin/hack"))
	d.mustPost(t, uiEvent("Browser Rule Beta", "Warning", "beta"))
	d.mustPost(t, uiEvent("Browser Rule Gamma", "Notice", "gamma"))
	evil, _ := json.Marshal(map[string]any{"rule": "Browser Evil <script>document.title='pwned'</script>", "priority": "Critical",
		"output": `evil <img src=x onerror="document.title='pwned'"> end`, "time": "2019-05-17T15:31:56Z",
		"output_fields": map[string]any{"k8s.pod.name": `<svg onload="document.title='pwned'">`, "fd.name": `"><script>alert(1)</script>`}})
	d.mustPost(t, string(evil))
	testpeers.Eventually(t, deadline, func() bool { return search(t, d, "").Statistics.All == 4 }, "events stored")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "ui-browser.cjs"), d.url, shots)
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_CORE="+pw, "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("%s(screenshots in %s)", out, shots)
	if err != nil {
		t.Fatalf("browser checks failed: %v", err)
	}
}
