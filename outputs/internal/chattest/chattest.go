// Package chattest holds the checks the chat outputs' tests share: what falcosidekick sent
// for an event, decoded, and whether a Slack-compatible body keeps its shape. Events, golden
// files and recordings come from internal/goldens. Only tests import it.
package chattest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/saker-dev/saker/internal/goldens"
)

// Falcosidekick returns the body falcosidekick sent for an event in a variant, decoded
// (see goldens.Recorded).
func Falcosidekick(t testing.TB, variant, name string) map[string]any {
	t.Helper()
	body := goldens.Recorded(t, variant, name).Body
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("falcosidekick's %s/%s body is not a JSON object: %v", variant, name, err)
	}
	return m
}

// Decode unmarshals a JSON payload into a generic map.
func Decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("payload is not a JSON object: %v\n%s", err, b)
	}
	return m
}

// Subsequence reports whether every element of sub appears in full, in the same order.
func Subsequence(sub, full []string) bool {
	i := 0
	for _, s := range full {
		if i < len(sub) && sub[i] == s {
			i++
		}
	}
	return i == len(sub)
}

// SameLines checks that every line of falcosidekick's text message (fsk) is in ours, blanks
// around it aside, but null printed as null (falcosidekick: "<no value>") and lists as JSON
// (falcosidekick: Go's [a b], so only the part before the list is compared). skip, when
// set, names the lines not compared.
func SameLines(t testing.TB, fsk, ours string, skip func(line string) bool) {
	t.Helper()
	for _, line := range strings.Split(fsk, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || skip != nil && skip(line):
			continue
		case strings.HasSuffix(line, ": <no value>"):
			line = strings.TrimSuffix(line, "<no value>") + "null"
		case strings.HasSuffix(line, "]") && strings.Contains(line, ": ["):
			line = line[:strings.Index(line, ": [")+3]
		}
		if !strings.Contains(ours, line) {
			t.Errorf("falcosidekick's line %q is missing from:\n%s", line, ours)
		}
	}
}
