package webui

import (
	"strings"
	"testing"
	"time"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"0":                    {},
		"null":                 {},
		"90":                   now.Add(-90 * time.Second),
		"15m":                  now.Add(-15 * time.Minute),
		"24h":                  now.Add(-24 * time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"2 weeks":              now.Add(-14 * 24 * time.Hour),
		"1M":                   now.Add(-30 * 24 * time.Hour),
		"2026-01-01T00:00:00Z": time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("since %q: %v %v, want %v", in, got, err, want)
		}
	}
	for in, reason := range map[string]string{
		"yesterday":           "expected a duration",
		"5parsecs":            `unknown unit "parsecs"`,
		"99999999999999999y":  "too large",
		"2026-13-01":          "expected a duration",
		"-5m":                 "expected a duration",
		"1000000000000000000": "too large",
	} {
		if _, err := parseSince(in, now); err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("since %q: %v, want an error with %q", in, err, reason)
		}
	}
}

func TestCSVSafe(t *testing.T) {
	for in, want := range map[string]string{"=HYPERLINK(1)": "'=HYPERLINK(1)", "+1": "'+1", "-x": "'-x", "@a": "'@a", "plain": "plain", "": ""} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLimits(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		err  bool
	}{{"", 100, false}, {"0", 100, false}, {"-3", 100, false}, {"50", 50, false}, {"10000000", MaxLimit, false}, {"ten", 0, true}} {
		got, err := positive("limit", c.in, 100, MaxLimit)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("limit %q: %d %v", c.in, got, err)
		}
	}
}
