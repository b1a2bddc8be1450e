package chattest

import (
	"fmt"
	"html"
	"strings"
	"testing"
)

// SlackShape checks that ours (a Slack-compatible webhook body saker built) keeps the shape
// of fsk (what falcosidekick sent for the same event and settings): every top-level and
// attachment key falcosidekick sets, with the same values, and every field it lists with
// the same value and width. saker may add fields (non-string output fields falcosidekick
// dropped) and keys; escaped says ours escapes Slack markup (&amp; &lt; &gt;); ordered says
// the fields keep falcosidekick's order.
func SlackShape(t testing.TB, fsk, ours map[string]any, escaped, ordered bool) {
	t.Helper()
	un := func(v any) any {
		if s, ok := v.(string); ok && escaped {
			return html.UnescapeString(s)
		}
		return v
	}
	for k, want := range fsk {
		if k == "attachments" {
			continue
		}
		if got := ours[k]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %q, falcosidekick sends %q", k, got, want)
		}
	}
	fatts, _ := fsk["attachments"].([]any)
	if len(fatts) == 0 {
		return // falcosidekick sent no attachment (rocketchat text mode, a listed defect)
	}
	atts, _ := ours["attachments"].([]any)
	if len(atts) != len(fatts) {
		t.Fatalf("%d attachments, falcosidekick sends %d", len(atts), len(fatts))
	}
	fa, a := fatts[0].(map[string]any), atts[0].(map[string]any)
	for k, want := range fa {
		switch k {
		case "fields":
			continue
		case "text":
			if got := un(a[k]); got != want {
				t.Errorf("attachment text = %q, falcosidekick sends %q", got, want)
			}
		default:
			if got := a[k]; got != want {
				t.Errorf("attachment %s = %q, falcosidekick sends %q", k, got, want)
			}
		}
	}
	ffields, _ := fa["fields"].([]any)
	if fa["fields"] == nil {
		if _, has := a["fields"]; has {
			t.Errorf("fields sent, falcosidekick sends none in this format")
		}
		return
	}
	got := map[string]map[string]any{}
	var titles, ftitles []string
	for _, f := range a["fields"].([]any) {
		m := f.(map[string]any)
		title := un(m["title"]).(string)
		got[title] = m
		titles = append(titles, title)
	}
	for _, f := range ffields {
		m := f.(map[string]any)
		title := m["title"].(string)
		ftitles = append(ftitles, title)
		g, ok := got[title]
		if !ok {
			t.Errorf("field %q missing", title)
			continue
		}
		if un(g["value"]) != m["value"] || g["short"] != m["short"] {
			t.Errorf("field %q = %q short=%v, falcosidekick sends %q short=%v", title, un(g["value"]), g["short"], m["value"], m["short"])
		}
	}
	if ordered && !Subsequence(ftitles, titles) {
		t.Errorf("field order %s does not keep falcosidekick's %s", strings.Join(titles, ","), strings.Join(ftitles, ","))
	}
}
