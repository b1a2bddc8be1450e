package enrich

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

func mustNew(t *testing.T, o Options) *Enricher {
	t.Helper()
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func sample() *event.Event {
	return &event.Event{
		Output:   "16:31:56.746609046: Error File below a known binary directory opened for writing (user=root)",
		Priority: event.Error, Rule: "Write below binary dir", Time: time.Unix(1, 0).UTC(),
		OutputFields: map[string]any{"user.name": "root", "proc.name": "touch", "proc.aname[2]": "bash", "evt.num": json.Number("12")},
		Tags:         []string{"zeta", "alpha"},
	}
}

func TestDefaults(t *testing.T) {
	e := mustNew(t, Options{})
	ev := &event.Event{Rule: "r"}
	if err := e.Apply(ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.UUID) != 36 || !ev.UUIDAssigned || ev.Source != "syscalls" {
		t.Errorf("uuid %q (assigned %v) source %q", ev.UUID, ev.UUIDAssigned, ev.Source)
	}
	ev2 := &event.Event{Rule: "r", UUID: "given", Source: "k8s_audit"}
	if err := e.Apply(ev2); err != nil {
		t.Fatal(err)
	}
	if ev2.UUID != "given" || ev2.UUIDAssigned || ev2.Source != "k8s_audit" {
		t.Errorf("overwrote uuid/source: %q %q", ev2.UUID, ev2.Source)
	}
	other := &event.Event{Rule: "r"}
	_ = e.Apply(other)
	if other.UUID == ev.UUID {
		t.Error("two events got the same uuid")
	}
}

func TestCustomFieldsWithEnv(t *testing.T) {
	env := map[string]string{"CLUSTER": "prod-eu"}
	e := mustNew(t, Options{CustomFields: map[string]string{"cluster": "%CLUSTER", "team": "sec", "missing": "%NOPE"},
		Getenv: func(k string) string { return env[k] }})
	ev := sample()
	if err := e.Apply(ev); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"cluster": "prod-eu", "team": "sec", "missing": "", "user.name": "root"} {
		if ev.OutputFields[k] != want {
			t.Errorf("%s = %#v, want %#v", k, ev.OutputFields[k], want)
		}
	}
	// Environment read at New, not at each event.
	env["CLUSTER"] = "changed"
	ev = &event.Event{Rule: "r"}
	_ = e.Apply(ev)
	if ev.OutputFields["cluster"] != "prod-eu" {
		t.Errorf("cluster = %v on an event without fields", ev.OutputFields["cluster"])
	}
}

func TestCustomFieldsUseProcessEnvByDefault(t *testing.T) {
	t.Setenv("SAKER_TEST_REGION", "eu-west-3")
	e := mustNew(t, Options{CustomFields: map[string]string{"region": "%SAKER_TEST_REGION"}})
	ev := sample()
	_ = e.Apply(ev)
	if ev.OutputFields["region"] != "eu-west-3" {
		t.Errorf("region = %v", ev.OutputFields["region"])
	}
}

func TestTemplatedFields(t *testing.T) {
	e := mustNew(t, Options{
		CustomFields:    map[string]string{"env": "prod"},
		TemplatedFields: map[string]string{"who": `{{ index . "user.name" }}@{{ .env }}`, "n": `{{ index . "evt.num" }}`},
	})
	ev := sample()
	if err := e.Apply(ev); err != nil {
		t.Fatal(err)
	}
	if ev.OutputFields["who"] != "root@prod" || ev.OutputFields["n"] != "12" {
		t.Errorf("who=%v n=%v", ev.OutputFields["who"], ev.OutputFields["n"])
	}
}

func TestTemplateParseErrorNamesKey(t *testing.T) {
	_, err := New(Options{TemplatedFields: map[string]string{"ok": "{{ .a }}", "broken": "{{ .a "}})
	if err == nil || !strings.HasPrefix(err.Error(), "templatedfields.broken: ") {
		t.Errorf("err = %v", err)
	}
}

func TestTemplateExecErrorReportedNotDropped(t *testing.T) {
	e := mustNew(t, Options{TemplatedFields: map[string]string{"bad": `{{ index .nofield 3 }}`, "good": "x"}})
	ev := sample()
	err := e.Apply(ev)
	if err == nil || !strings.Contains(err.Error(), "templatedfields.bad") {
		t.Errorf("err = %v", err)
	}
	if ev.OutputFields["good"] != "x" {
		t.Error("other templated fields not set")
	}
	if _, ok := ev.OutputFields["bad"]; !ok {
		t.Error("failed field not set at all")
	}
}

func TestCustomTagsAppendedAndSorted(t *testing.T) {
	e := mustNew(t, Options{CustomTags: []string{"mid", "beta"}})
	ev := sample()
	orig := ev.Tags
	_ = e.Apply(ev)
	if want := []string{"alpha", "beta", "mid", "zeta"}; !reflect.DeepEqual(ev.Tags, want) {
		t.Errorf("tags %v, want %v", ev.Tags, want)
	}
	if !reflect.DeepEqual(orig, []string{"zeta", "alpha"}) {
		t.Errorf("caller's tag slice modified: %v", orig)
	}
	ev = &event.Event{Rule: "r"}
	_ = e.Apply(ev)
	if !reflect.DeepEqual(ev.Tags, []string{"beta", "mid"}) {
		t.Errorf("tags on an untagged event %v", ev.Tags)
	}
	ev = &event.Event{Rule: "r", Tags: []string{"b", "a"}}
	_ = mustNew(t, Options{}).Apply(ev)
	if !reflect.DeepEqual(ev.Tags, []string{"a", "b"}) {
		t.Errorf("tags not sorted without custom tags: %v", ev.Tags)
	}
}

func TestBracketReplacer(t *testing.T) {
	e := mustNew(t, Options{BracketReplacer: "_"})
	ev := sample()
	ev.OutputFields["container.label[io.kubernetes.pod.name]"] = "p"
	_ = e.Apply(ev)
	if ev.OutputFields["proc.aname_2"] != "bash" || ev.OutputFields["container.label_io.kubernetes.pod.name"] != "p" {
		t.Errorf("fields %v", ev.OutputFields)
	}
	for k := range ev.OutputFields {
		if strings.ContainsAny(k, "[]") {
			t.Errorf("key %q kept a bracket", k)
		}
	}
	ev = sample()
	_ = mustNew(t, Options{}).Apply(ev)
	if _, ok := ev.OutputFields["proc.aname[2]"]; !ok {
		t.Error("brackets replaced without bracketreplacer")
	}
}

func TestOutputFieldFormat(t *testing.T) {
	e := mustNew(t, Options{
		CustomFields:      map[string]string{"b": "2", "a": "1"},
		TemplatedFields:   map[string]string{"t": "T"},
		CustomTags:        []string{"x"},
		OutputFieldFormat: "<timestamp>: <priority> <output> <custom_fields> <templated_fields> (<tags>)",
	})
	ev := sample()
	_ = e.Apply(ev)
	want := "16:31:56.746609046: Error File below a known binary directory opened for writing (user=root) a=1 b=2 t=T (alpha,x,zeta)"
	if ev.Output != want {
		t.Errorf("output\n got %q\nwant %q", ev.Output, want)
	}
	// Empty placeholders leave no trailing "()" or spaces.
	e = mustNew(t, Options{OutputFieldFormat: "<timestamp>: <priority> <output> <custom_fields> (<tags>)"})
	ev = sample()
	ev.Tags = nil
	_ = e.Apply(ev)
	if want := "16:31:56.746609046: Error File below a known binary directory opened for writing (user=root)"; ev.Output != want {
		t.Errorf("output\n got %q\nwant %q", ev.Output, want)
	}
	// Outputs not starting with a clock are left alone.
	ev = sample()
	ev.Output = "no clock here at all"
	_ = e.Apply(ev)
	if ev.Output != "no clock here at all" {
		t.Errorf("reformatted %q", ev.Output)
	}
}
