package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
)

const base = `
- required_engine_version: 15
- required_plugin_versions:
    - name: k8saudit
      version: 0.18.0
- list: users
  items: [alice]
- macro: is_user
  condition: ka.user in (users)
- rule: first
  desc: first rule
  condition: is_user
  output: first %ka.user
  priority: WARNING
  source: k8s_audit
  tags: [k8s]
- rule: second
  desc: second rule
  condition: ka.verb = create
  output: second
  priority: NOTICE
  source: k8s_audit
`

func names(e *Engine) []string {
	var out []string
	for _, r := range e.Rules() {
		out = append(out, r.Name)
	}
	return out
}

func TestLoaderAppendOverride(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		ev    *mapEvent
		want  []string // matching rules (matching: all)
		check func(t *testing.T, e *Engine)
	}{
		{name: "base", ev: ev("ka.user", "bob", "ka.verb", "create"), want: []string{"second"}},
		{name: "list append", extra: "- list: users\n  items: [bob]\n  append: true\n", ev: ev("ka.user", "bob"), want: []string{"first"}},
		{name: "list override append", extra: "- list: users\n  items: [bob]\n  override:\n    items: append\n", ev: ev("ka.user", "alice"), want: []string{"first"}},
		{name: "list override replace", extra: "- list: users\n  items: [bob]\n  override:\n    items: replace\n", ev: ev("ka.user", "alice"), want: nil},
		{name: "list redefine", extra: "- list: users\n  items: [bob]\n", ev: ev("ka.user", "bob"), want: []string{"first"}},
		{name: "macro append", extra: "- macro: is_user\n  condition: or ka.user = carol\n  append: true\n", ev: ev("ka.user", "carol"), want: []string{"first"}},
		{name: "macro override replace", extra: "- macro: is_user\n  condition: ka.user = carol\n  override:\n    condition: replace\n", ev: ev("ka.user", "alice"), want: nil},
		{name: "macro redefine", extra: "- macro: is_user\n  condition: ka.user = carol\n", ev: ev("ka.user", "carol"), want: []string{"first"}},
		{name: "rule append condition", extra: "- rule: second\n  condition: and ka.ns = prod\n  append: true\n", ev: ev("ka.verb", "create", "ka.ns", "dev"), want: nil},
		{name: "rule append condition matches", extra: "- rule: second\n  condition: and ka.ns = prod\n  append: true\n", ev: ev("ka.verb", "create", "ka.ns", "prod"), want: []string{"second"}},
		{name: "rule override condition append", extra: "- rule: second\n  condition: or ka.verb = update\n  override:\n    condition: append\n", ev: ev("ka.verb", "update"), want: []string{"second"}},
		{name: "rule override condition replace", extra: "- rule: second\n  condition: ka.verb = delete\n  override:\n    condition: replace\n", ev: ev("ka.verb", "create"), want: nil},
		{name: "rule override output/priority/tags/desc", extra: `
- rule: second
  output: extra
  desc: more
  tags: [added]
  priority: ERROR
  override:
    output: append
    desc: append
    tags: append
    priority: replace
`, ev: ev("ka.verb", "create"), want: []string{"second"}, check: func(t *testing.T, e *Engine) {
			r := e.Rules()[1]
			if r.Priority != event.Error || r.Desc != "second rule more" || !slices.Equal(r.Tags, []string{"added"}) {
				t.Errorf("rule = %+v", r)
			}
			var out string
			e.Evaluate(ev("ka.verb", "create"), func(a *event.Event) { out = a.Output })
			if !strings.HasSuffix(out, ": Error second extra") {
				t.Errorf("output %q", out)
			}
		}},
		{name: "rule override tags replace", extra: "- rule: first\n  tags: [x, a]\n  override:\n    tags: replace\n", ev: ev(), check: func(t *testing.T, e *Engine) {
			if tags := e.Rules()[0].Tags; !slices.Equal(tags, []string{"a", "x"}) {
				t.Errorf("tags %v", tags)
			}
		}},
		{name: "rule override enabled", extra: "- rule: second\n  enabled: false\n  override:\n    enabled: replace\n", ev: ev("ka.verb", "create"), want: nil},
		{name: "rule enabled-only item", extra: "- rule: second\n  enabled: false\n", ev: ev("ka.verb", "create"), want: nil, check: func(t *testing.T, e *Engine) {
			if r := e.Rules()[1]; r.Name != "second" || r.Enabled {
				t.Errorf("disabled rule must still be listed, disabled: %+v", r)
			}
		}},
		{name: "re-enable", extra: "- rule: second\n  enabled: false\n- rule: second\n  enabled: true\n", ev: ev("ka.verb", "create"), want: []string{"second"}},
		{name: "redefinition keeps position", extra: `
- rule: first
  desc: redefined
  condition: ka.verb exists
  output: first again
  priority: INFO
  source: k8s_audit
- rule: third
  desc: new
  condition: ka.verb exists
  output: third
  priority: INFO
  source: k8s_audit
`, ev: ev("ka.verb", "create"), want: []string{"first", "second", "third"}, check: func(t *testing.T, e *Engine) {
			if got := names(e); !slices.Equal(got, []string{"first", "second", "third"}) {
				t.Errorf("order %v", got)
			}
			if e.Rules()[0].Priority != event.Informational {
				t.Errorf("redefinition not applied")
			}
		}},
		{name: "other source skipped, appends to it accepted", extra: `
- rule: shell
  desc: syscall rule
  condition: evt.type = execve and proc.name = bash
  output: "%proc.name"
  priority: WARNING
- rule: shell
  condition: and proc.pname = sshd
  append: true
- macro: unused_syscall_macro
  condition: proc.name in (bash)
`, ev: ev("ka.verb", "create"), want: []string{"second"}, check: func(t *testing.T, e *Engine) {
			if got := names(e); slices.Contains(got, "shell") {
				t.Errorf("syscall rule loaded: %v", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustLoad(t, Options{Matching: MatchAll}, base, tc.extra)
			if got := matched(e, tc.ev); !slices.Equal(got, tc.want) {
				t.Errorf("matched %v, want %v", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

func TestLoaderExceptions(t *testing.T) {
	rule := `
- list: trusted
  items: [t1, t2]
- rule: r
  desc: d
  condition: ka.verb = create
  output: o
  priority: INFO
  source: k8s_audit
  exceptions:
    - name: by_user
      fields: ka.user
      values: [alice, trusted]
    - name: by_ns_and_image
      fields: [ka.ns, ka.image]
      comps: [=, in]
      values:
        - [kube-system, [img1, "img 2"]]
        - [default, trusted]
    - name: by_prefix
      fields: [ka.path]
      comps: [startswith]
      values:
        - [/tmp]
    - name: empty_for_later
      fields: [ka.ns]
`
	tests := []struct {
		name, extra string
		ev          *mapEvent
		want        bool
	}{
		{"no exception", "", ev("ka.verb", "create", "ka.user", "bob"), true},
		{"single field", "", ev("ka.verb", "create", "ka.user", "alice"), false},
		{"single field list splice", "", ev("ka.verb", "create", "ka.user", "t2"), false},
		{"tuple", "", ev("ka.verb", "create", "ka.ns", "kube-system", "ka.image", "img 2"), false},
		{"tuple needs all fields", "", ev("ka.verb", "create", "ka.ns", "kube-system", "ka.image", "img3"), true},
		{"tuple list name", "", ev("ka.verb", "create", "ka.ns", "default", "ka.image", "t1"), false},
		{"tuple startswith", "", ev("ka.verb", "create", "ka.path", "/tmp/x"), false},
		{"missing field does not except", "", ev("ka.verb", "create", "ka.ns", "kube-system"), true},
		{"append values to existing exception", "- rule: r\n  exceptions:\n    - name: empty_for_later\n      values: [[prod]]\n  append: true\n",
			ev("ka.verb", "create", "ka.ns", "prod"), false},
		{"append new exception", "- rule: r\n  exceptions:\n    - name: new\n      fields: [ka.user, ka.ns]\n      values: [[bob, dev]]\n  override:\n    exceptions: append\n",
			ev("ka.verb", "create", "ka.user", "bob", "ka.ns", "dev"), false},
		{"replace exceptions", "- rule: r\n  exceptions:\n    - name: other\n      fields: ka.user\n      values: [zed]\n  override:\n    exceptions: replace\n",
			ev("ka.verb", "create", "ka.user", "alice"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustLoad(t, Options{}, rule, tc.extra)
			if got := len(matched(e, tc.ev)) == 1; got != tc.want {
				t.Errorf("matched = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLoaderErrors(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"yaml syntax", "- rule: [unclosed\n", []string{"f1.yaml", "invalid YAML"}},
		{"not a sequence", "rule: x\n", []string{"f1.yaml:1", "not a YAML sequence"}},
		{"item not a mapping", "- just a string\n", []string{"f1.yaml:1", "mapping"}},
		{"missing output", "- rule: r\n  desc: d\n  condition: ka.a exists\n  priority: INFO\n", []string{"f1.yaml:1", `rule "r"`, `missing "output"`}},
		{"bad priority", "- rule: r\n  desc: d\n  condition: ka.a exists\n  output: o\n  priority: LOUD\n", []string{"f1.yaml:5", `rule "r"`, `invalid priority "LOUD"`}},
		{"bad condition line", "- list: l\n  items: [a]\n\n- rule: bad\n  desc: d\n  condition: ka.a = (\n  output: o\n  priority: INFO\n  source: k8s_audit\n",
			[]string{"f1.yaml:6", `rule "bad"`, "condition"}},
		{"bad macro used", "- macro: m\n  condition: ka.a in (\n" + ruleYAML("", "m"), []string{"f1.yaml:2", `macro "m"`, `rule "r"`}},
		{"bad macro unused is fine at syntax level? no: parsed only when used", "- macro: m\n  condition: ka.a = 1\n" + ruleYAML("", "m and ka.b in"), []string{"f1.yaml", `rule "r"`, "expected a list"}},
		{"append without previous", "- list: nope\n  items: [a]\n  append: true\n", []string{"f1.yaml:1", `list "nope"`, "no list by that name"}},
		{"macro append without previous", "- macro: nope\n  condition: x\n  append: true\n", []string{`macro "nope"`, "no macro by that name"}},
		{"rule append without previous", "- rule: nope\n  condition: and x\n  append: true\n", []string{`rule "nope"`, "no rule by that name"}},
		{"rule override without previous", "- rule: nope\n  condition: x\n  override:\n    condition: append\n", []string{`rule "nope"`, "no rule by that name"}},
		{"override and append", base + "- rule: first\n  condition: x\n  append: true\n  override:\n    condition: append\n", []string{"cannot be used together"}},
		{"override key missing", base + "- rule: first\n  override:\n    condition: append\n", []string{"is not defined"}},
		{"override priority append", base + "- rule: first\n  priority: INFO\n  override:\n    priority: append\n", []string{`"priority" cannot be appended`}},
		{"key not in override", base + "- rule: first\n  condition: x\n  output: y\n  override:\n    condition: append\n", []string{`unexpected key "output"`}},
		{"enabled-only unknown rule", "- rule: ghost\n  enabled: false\n", []string{`rule "ghost"`, "no rule by that name"}},
		{"source change", base + "- rule: first\n  desc: d\n  condition: ka.a exists\n  output: o\n  priority: INFO\n", []string{"different source"}},
		{"exception bad comp", "- rule: r\n  desc: d\n  condition: ka.a exists\n  output: o\n  priority: INFO\n  source: k8s_audit\n  exceptions:\n    - name: e\n      fields: [ka.a]\n      comps: [like]\n      values: [[x]]\n",
			[]string{"f1.yaml:8", `"like" is not a supported comparison operator`}},
		{"exception single field comp", "- rule: r\n  desc: d\n  condition: ka.a exists\n  output: o\n  priority: INFO\n  source: k8s_audit\n  exceptions:\n    - name: e\n      fields: ka.a\n      comps: =\n      values: [x]\n",
			[]string{"comps must be one of in, pmatch, intersects"}},
		{"exception length mismatch", "- rule: r\n  desc: d\n  condition: ka.a exists\n  output: o\n  priority: INFO\n  source: k8s_audit\n  exceptions:\n    - name: e\n      fields: [ka.a, ka.b]\n      values: [[x]]\n",
			[]string{"value 1 must be a list of 2 values"}},
		{"exception unknown field", "- rule: r\n  desc: d\n  condition: ka.a exists\n  output: o\n  priority: INFO\n  source: k8s_audit\n  exceptions:\n    - name: e\n      fields: [ka.unknown]\n      values: [[x]]\n",
			[]string{`exception "e"`, "unknown field"}},
		{"exception without fields", "- rule: r\n  desc: d\n  condition: ka.a exists\n  output: o\n  priority: INFO\n  source: k8s_audit\n  exceptions:\n    - name: e\n      values: [[x]]\n",
			[]string{`exception "e" must have a 'fields' property`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := loadYAML(t, newMapSource(), Options{}, tc.doc)
			if err == nil {
				t.Fatal("no error")
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Errorf("error %T is not a *LoadError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoaderWarningsAndMultiDoc(t *testing.T) {
	doc := base + `
- unknown_item: 1
- macro: broken_unused
  condition: proc.name in (
---
- rule: other
  desc: d
  condition: proc.name = x
  output: o
  priority: INFO
  source: aws_cloudtrail
`
	e, warns, err := loadYAML(t, newMapSource(), Options{}, doc)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, w := range warns {
		msgs = append(msgs, w.String())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"unknown top level item", `rule "other"`, `source "aws_cloudtrail" is not supported`, `macro "broken_unused"`, "does not parse"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings %q lack %q", all, want)
		}
	}
	if got := names(e); !slices.Equal(got, []string{"first", "second"}) {
		t.Errorf("rules %v", got)
	}
}

func TestSkipIfUnknownFilter(t *testing.T) {
	doc := `
- rule: r
  desc: d
  condition: ka.unknown = 1
  output: o
  priority: INFO
  source: k8s_audit
  skip-if-unknown-filter: true
`
	e, warns, err := loadYAML(t, newMapSource(), Options{}, doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Rules()) != 0 || len(warns) != 1 || !strings.Contains(warns[0].Msg, "skip-if-unknown-filter") {
		t.Errorf("rules %v warnings %v", names(e), warns)
	}
}

// upstreamRulesSHA256 is the SHA-256 of Falco's k8s_audit_rules.yaml at the commit
// defaults/NOTICE names; the embedded default rules must be that file, unmodified.
const upstreamRulesSHA256 = "fa53280e337db6edaeb44cf49fbd1be4349f3c48e3cd0017c2575097df901a1e"

// TestLoadUpstreamAndTestRules loads the upstream default file unmodified, and every
// combination of test-rules files that cases-with-extra-rules.tsv uses.
func TestLoadUpstreamAndTestRules(t *testing.T) {
	if sum := sha256.Sum256(DefaultFile().Data); hex.EncodeToString(sum[:]) != upstreamRulesSHA256 {
		t.Fatalf("embedded default rules (sha256 %x) differ from the upstream file (sha256 %s)", sum, upstreamRulesSHA256)
	}
	e, warns, err := Load(newGoldenSource(t), []File{DefaultFile()}, Options{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	enabled := 0
	for _, r := range e.Rules() {
		if r.Source != "k8s_audit" || r.File != DefaultFileName || r.Line == 0 {
			t.Errorf("rule %+v", r)
		}
		if r.Enabled {
			enabled++
		}
	}
	if len(e.Rules()) < 40 || enabled != len(e.Rules()) {
		t.Errorf("%d rules, %d enabled", len(e.Rules()), enabled)
	}
	files := goldens.Glob(t, filepath.Join(corpus, "test-rules", "*.yaml"))
	v4 := goldens.Glob(t, filepath.Join(corpus, "test-rules", "engine_v4", "*.yaml"))
	for _, f := range append(files, v4...) {
		rel, _ := filepath.Rel(filepath.Join(corpus, "test-rules"), f)
		t.Run(rel, func(t *testing.T) {
			list := []string{"DEFAULT", rel}
			if strings.HasPrefix(rel, "engine_v4/") && rel != "engine_v4/engine_v4_k8s_audit_rules.yaml" {
				list = []string{"engine_v4/engine_v4_k8s_audit_rules.yaml", rel}
			}
			if rel == "single_rule_with_json_pointer.yaml" {
				list = []string{rel}
			}
			if _, _, err := Load(newGoldenSource(t), LoadCorpusFiles(t, list...), Options{Hostname: "h"}); err != nil {
				t.Errorf("%v: %v", list, err)
			}
		})
	}
}

// TestLoadSyscallRules checks that a falco_rules.yaml-style file (syscall rules, macros and
// lists with Falco's quoting idioms) loads next to the k8s_audit rules: its rules are skipped
// with a warning and its macros parse.
func TestLoadSyscallRules(t *testing.T) {
	doc := `
- required_engine_version: 17
- macro: open_write
  condition: (evt.type in (open,openat,openat2) and evt.is_open_write=true and fd.typechar='f' and fd.num>=0)
- macro: proc_name_exists
  condition: (proc.name!="<NA>")
- macro: spawned_process
  condition: (evt.type in (execve, execveat) and evt.dir=<)
- list: login_binaries
  items: [login, systemd, '"(systemd)"', systemd-logind, su]
- list: rfc_1918_addresses
  items: ['"10.0.0.0/8"', '"172.16.0.0/12"', '"192.168.0.0/16"']
- macro: outbound
  condition: >
    (((evt.type = connect and evt.dir=<) or
      (evt.type in (sendto,sendmsg) and evt.dir=< and
       fd.l4proto != tcp and fd.connected=false and fd.name_changed=true)) and
     (fd.typechar = 4 or fd.typechar = 6) and
     (fd.ip != "0.0.0.0" and fd.net != "127.0.0.0/8" and not fd.snet in (rfc_1918_addresses)) and
     (evt.rawres >= 0 or evt.res = EINPROGRESS))
- macro: package_mgmt_ancestor_procs
  condition: proc.pname in (login_binaries) or
             proc.aname[2] in (login_binaries)
- rule: Terminal shell in container
  desc: A shell was used as the entrypoint/exec point into a container with an attached terminal.
  condition: >
    spawned_process and container
    and shell_procs and proc.tty != 0
  output: A shell was spawned in a container (evt_type=%evt.type user=%user.name %container.info)
  priority: NOTICE
  tags: [maturity_stable, container, shell, mitre_execution, T1059]
  exceptions:
    - name: proc_names
      fields: [proc.name, proc.pname]
      comps: [=, in]
      values:
        - [bash, [sshd, login_binaries]]
- rule: Terminal shell in container
  condition: and not proc.name = zsh
  append: true
`
	e, warns, err := loadYAML(t, newMapSource(), Options{}, doc, base)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(e); !slices.Equal(got, []string{"first", "second"}) {
		t.Errorf("rules %v", got)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].String(), `f1.yaml:24: rule "Terminal shell in container": source "syscall" is not supported`) {
		t.Errorf("warnings %v", warns)
	}
}
