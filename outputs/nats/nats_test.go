package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	natsgo "github.com/nats-io/nats.go"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
)

// testUUID replaces the random uuid the HTTP input would assign.
const testUUID = "11111111-2222-4333-8444-555555555555"

func loadEvents(t *testing.T) map[string]*event.Event {
	t.Helper()
	return goldens.Events(t, func(string) string { return testUUID })
}

// published is a NATS message as the golden files show it.
type published struct {
	Subject string `json:"subject"`
	Payload string `json:"payload"`
}

// TestGolden checks subject and payload per event against testdata/ and, for shape, against
// what falcosidekick published: same subject, same JSON once decoded (saker does not escape
// <>& and keeps the uuid it was given).
func TestGolden(t *testing.T) {
	n := &NATS{tmpl: DefaultSubjectTemplate}
	for name, ev := range loadEvents(t) {
		t.Run(name, func(t *testing.T) {
			got := published{Subject: n.Subject(ev), Payload: string(ev.JSON())}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode([]published{got}); err != nil {
				t.Fatal(err)
			}
			goldens.Check(t, filepath.Join("testdata", name+".json"), buf.Bytes())

			fsk := goldens.Recorded(t, "nats", name)
			if got.Subject != fsk.Subject {
				t.Errorf("subject %q, falcosidekick %q", got.Subject, fsk.Subject)
			}
			ours, theirs := decode(t, got.Payload), decode(t, fsk.Payload)
			if ours["uuid"] != testUUID {
				t.Errorf("uuid %v, want %s", ours["uuid"], testUUID)
			}
			ours["uuid"] = "<VARIES>"
			goldens.NormalizeTime(ours)
			goldens.NormalizeTime(theirs)
			o, _ := json.Marshal(ours)
			th, _ := json.Marshal(theirs)
			if !bytes.Equal(o, th) {
				t.Errorf("payload differs from falcosidekick's once decoded:\nsaker %s\nfsk   %s", o, th)
			}
			if bytes.Contains([]byte(got.Payload), []byte(`\u003c`)) {
				t.Errorf("payload escapes < as \\u003c")
			}
		})
	}
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("payload is not JSON: %v\n%s", err, s)
	}
	return m
}

func TestSanitizeRule(t *testing.T) {
	for in, want := range map[string]string{
		"Write below binary dir":             "write_below_binary_dir",
		`Special <chars> & "quotes" rule`:    "special_chars_quotes_rule",
		"  --Leading and trailing--  ":       "leading_and_trailing",
		"Café rule ☃":                        "caf_rule",
		"K8s Secret Access By Non Admin":     "k8s_secret_access_by_non_admin",
		"***":                                "unknown",
		"Falco internal: syscall event drop": "falco_internal_syscall_event_drop",
	} {
		if got := SanitizeRule(in); got != want {
			t.Errorf("SanitizeRule(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSubjectTemplate(t *testing.T) {
	ev := &event.Event{Priority: event.Informational, Rule: "Terminal shell in container"}
	n := &NATS{tmpl: "alerts.<rule>.<priority>.x"}
	if got, want := n.Subject(ev), "alerts.terminal_shell_in_container.informational.x"; got != want {
		t.Errorf("subject %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // "" for valid
	}{
		{Config{}, ""},
		{Config{HostPort: "nats://127.0.0.1:4222"}, ""},
		{Config{HostPort: "nats://a:4222, nats://b:4222", SubjectTemplate: "x.<rule>"}, ""},
		{Config{HostPort: "127.0.0.1:4222"}, "nats.hostport"},
		{Config{HostPort: "http://u:secret@h:1"}, "nats.hostport"},
		{Config{HostPort: "nats://h:1", SubjectTemplate: "falco.>"}, "nats.subjecttemplate"},
		{Config{HostPort: "nats://h:1", SubjectTemplate: "falco..<rule>"}, "nats.subjecttemplate"},
		{Config{HostPort: "nats://h:1", SubjectTemplate: "falco <rule>"}, "nats.subjecttemplate"},
		{Config{HostPort: "nats://h:1", CredsFile: "a", NkeySeedFile: "b"}, "nats.credsfile"},
		{Config{HostPort: "nats://h:1", JWTFile: "a"}, "nats.jwtfile"},
		{Config{HostPort: "nats://h:1", Password: "secret"}, "nats.password"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("error leaks a secret: %v", err)
		}
	}
}

func TestClassify(t *testing.T) {
	if !delivery.IsPermanent(classify(fmt.Errorf("x: %w", natsgo.ErrMaxPayload))) {
		t.Error("max payload should be permanent")
	}
	if delivery.IsPermanent(classify(context.DeadlineExceeded)) {
		t.Error("a timeout should be transient")
	}
}

// FuzzSubject checks that any rule name gives a valid subject with the default template.
func FuzzSubject(f *testing.F) {
	for _, s := range []string{"Write below binary dir", `<>&"'`, "", "日本語", "a.b>c*d", " \t\n"} {
		f.Add(s)
	}
	n := &NATS{tmpl: DefaultSubjectTemplate}
	f.Fuzz(func(t *testing.T, rule string) {
		for p := event.Debug; p <= event.Emergency; p++ {
			s := n.Subject(&event.Event{Rule: rule, Priority: p})
			if !ValidSubject(s) || strings.Count(s, ".") != 2 {
				t.Fatalf("rule %q gives subject %q", rule, s)
			}
		}
	})
}
