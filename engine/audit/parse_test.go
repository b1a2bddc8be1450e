package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

const (
	evA = `{"kind":"Event","auditID":"a","verb":"create","stageTimestamp":"2018-10-25T14:09:12.581541Z"}`
	evB = `{"kind":"Event","auditID":"b","verb":"delete","stageTimestamp":"2018-10-25T14:09:13Z"}`
)

type parseResult struct {
	ids   []string // auditIDs yielded
	skips []string // "item:reason"
	err   error
}

func parseAll(t *testing.T, p *Parser, payload string) parseResult {
	t.Helper()
	var r parseResult
	src := NewSource()
	f, err := src.Field("ka.auditid", "", false)
	if err != nil {
		t.Fatal(err)
	}
	r.err = p.Parse([]byte(payload), func(ev *Event) error {
		v, _ := f.Extract(ev, nil)
		r.ids = append(r.ids, strings.Join(v, ","))
		return nil
	}, func(ie *ItemError) { r.skips = append(r.skips, fmt.Sprintf("%d:%s", ie.Item, ie.Reason)) })
	return r
}

func TestParsePayloads(t *testing.T) {
	big := `{"kind":"Event","auditID":"big","stageTimestamp":"2018-10-25T14:09:12Z","x":"` + strings.Repeat("x", 300) + `"}`
	for _, c := range []struct {
		name    string
		payload string
		ids     string
		skips   string
		err     string // substring of the error, "" for none
	}{
		{"event", evA, "a", "", ""},
		{"event with spaces", "\n  " + strings.ReplaceAll(evA, ",", " ,\n ") + " \n", "a", "", ""},
		{"event list", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[` + evA + `,` + evB + `]}`, "a b", "", ""},
		{"empty event list", `{"kind":"EventList","items":[]}`, "", "", ""},
		{"array of events", `[` + evA + `, ` + evB + `]`, "a b", "", ""},
		{"array of lists and events", `[{"kind":"EventList","items":[` + evA + `]},[` + evB + `]]`, "a b", "", ""},
		{"bad item keeps the others", `{"kind":"EventList","items":[` + evA + `,{"kind":"Event","auditID":"x"},42,` + evB + `]}`, "a b", "1:bad_timestamp 2:not_audit_event", ""},
		{"bad timestamp", `{"kind":"EventList","items":[{"kind":"Event","stageTimestamp":"yesterday"},` + evB + `]}`, "b", "0:bad_timestamp", ""},
		{"oversize item", `{"kind":"EventList","items":[` + big + `,` + evA + `]}`, "a", "0:oversize", ""},
		{"array with a non-audit object", `[{"kind":"Pod"},` + evA + `]`, "a", "0:not_audit_event", ""},
		{"kind is not a string", `{"kind": 0}`, "", "", "not recognized"},
		{"no kind", `{"auditID":"a"}`, "", "", "not recognized"},
		{"event list without items", `{"kind":"EventList"}`, "", "", "not recognized"},
		{"scalar", `"Event"`, "", "", "not recognized"},
		{"not json", `this is not json`, "", "", "offset 0"},
		{"truncated", evA[:40], "", "", "offset 40"},
		{"trailing data", evA + `}`, "", "", "offset"},
		{"trailing comma", `{"kind":"Event",}`, "", "", "offset 16"},
		{"bad escape", `{"kind":"Ev\qent"}`, "", "", "offset 12"},
		{"control character", "{\"kind\":\"Ev\nent\"}", "", "", "control character"},
		{"bad number", `{"kind":"Event","n":01}`, "", "", "offset 21"},
		{"empty", ``, "", "", "end of input"},
		{"deep nesting", strings.Repeat("[", 600) + strings.Repeat("]", 600), "", "", "nesting"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &Parser{MaxEventSize: 256}
			r := parseAll(t, p, c.payload)
			if got := strings.Join(r.ids, " "); got != c.ids {
				t.Errorf("events %q, want %q", got, c.ids)
			}
			if got := strings.Join(r.skips, " "); got != c.skips {
				t.Errorf("skipped %q, want %q", got, c.skips)
			}
			switch {
			case c.err == "" && r.err != nil:
				t.Errorf("error %v, want none", r.err)
			case c.err != "" && (r.err == nil || !strings.Contains(r.err.Error(), c.err)):
				t.Errorf("error %v, want one containing %q", r.err, c.err)
			}
		})
	}
}

func TestParseSyntaxErrorAndYieldError(t *testing.T) {
	var p Parser
	err := p.Parse([]byte(`{"kind":"Event" "x":1}`), func(*Event) error { return nil }, nil)
	var se *SyntaxError
	if !errors.As(err, &se) || se.Offset != 16 {
		t.Fatalf("error %v, want a *SyntaxError at offset 16", err)
	}
	stop := errors.New("stop")
	n := 0
	err = p.Parse([]byte(`[`+evA+`,`+evB+`]`), func(*Event) error { n++; return stop }, nil)
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("yield error: got %v after %d events, want stop after 1", err, n)
	}
}

func TestParseEventReuse(t *testing.T) {
	// Values extracted from one event must not leak into the next (the cache is per event).
	src := NewSource()
	f, _ := src.Field("ka.verb", "", false)
	var p Parser
	var got []string
	for _, payload := range []string{evA, evB, `{"kind":"Event","stageTimestamp":"2018-10-25T14:09:13Z"}`} {
		if err := p.Parse([]byte(payload), func(ev *Event) error {
			v, ok := f.Extract(ev, nil)
			got = append(got, fmt.Sprint(v, ok))
			return nil
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if want := "[create] true|[delete] true|[] false"; strings.Join(got, "|") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, "|"), want)
	}
}

func TestFieldSemantics(t *testing.T) {
	ev, err := ParseEvent([]byte(`{"kind":"Event","stageTimestamp":"2018-10-25T14:09:12Z",
		"requestURI":"/api/v1/namespaces/default/pods/x/exec?command=sh&command=-c&container=c1",
		"user":{"username":"u\u00e9","groups":[]},"userAgent":null,
		"responseStatus":{"code":201.50},
		"objectRef":{"resource":"pods","name":"x"},
		"responseObject":{"kind":"Pod","metadata":{"name":"x-1"}},
		"requestObject":{"spec":{
			"securityContext":{"runAsUser":1000},
			"containers":[
				{"name":"a","image":"registry.local:5000/app:v2","securityContext":{"privileged":false,"runAsUser":0,"capabilities":{"add":["NET_ADMIN","SYS_TIME"]}},"ports":[{"containerPort":80},{"hostPort":8080,"containerPort":80}],"args":["-v","--x"]},
				{"name":"b","image":"redis@sha256:abc","securityContext":{"privileged":true}}],
			"volumes":[{"name":"h","hostPath":{"path":"/proc/1"}},{"name":"s","secret":{"secretName":"s"}}],
			"ports":[{"port":80}]},
			"subjects":[{"kind":"User","name":"alice"},{"kind":"ServiceAccount","name":"sa","namespace":"ns"},{"kind":"Group","name":"g"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	src := NewSource()
	for _, c := range []struct {
		ref  string
		want string // values joined by "|", "<NA>" when missing
	}{
		{"ka.uri.param[command]", "sh"},
		{"ka.uri.param[container]", "c1"},
		{"ka.uri.param[nope]", "<NA>"},
		{"ka.user.name", "ué"},
		{"ka.user.groups", "<NA>"}, // empty list is missing
		{"ka.useragent", "null"},   // a JSON null is rendered, as the plugin does
		{"ka.response.code", "201.50"},
		{"ka.target.pod.name", "x-1"},
		{"ka.req.pod.containers.image", "registry.local:5000/app:v2|redis@sha256:abc"},
		{"ka.req.pod.containers.image[1]", "redis@sha256:abc"},
		{"ka.req.pod.containers.image[2]", "<NA>"},
		{"ka.req.pod.containers.image[x]", "registry.local:5000/app:v2|redis@sha256:abc"},
		{"ka.req.pod.containers.image.repository", "registry.local|redis"},
		{"ka.req.container.image", "registry.local:5000/app:v2"},
		{"ka.req.container.image.repository", "registry.local"},
		{"ka.req.pod.containers.privileged", "false|true"},
		{"ka.req.container.privileged", "true"},
		{"ka.req.pod.containers.eff_run_as_user", "0|1000"},
		{"ka.req.pod.containers.eff_run_as_group", "0|0"},
		{"ka.req.pod.containers.run_as_user", "0"},
		{"ka.req.pod.containers.add_capabilities", "NET_ADMIN|SYS_TIME"},
		{"ka.req.pod.containers.host_port", "80|8080"},
		{"ka.req.pod.containers.args", "-v|--x"},
		{"ka.req.pod.containers.name", "a|b"},
		{"ka.req.pod.initContainers.name", "<NA>"},
		{"ka.req.pod.volumes.hostpath", "/proc/1"},
		{"ka.req.pod.volumes.volume_type", "hostPath|secret"},
		{"ka.req.volume.hostpath[/proc*]", "true"},
		{"ka.req.volume.hostpath[/proc]", "false"},
		{"ka.req.volume.hostpath[/proc/1]", "true"},
		{"ka.req.service.ports", `[{"port":80}]`},
		{"ka.req.service.ports[0]", `{"port":80}`},
		{"ka.req.binding.subjects.user_names", "alice"},
		{"ka.req.binding.subjects.serviceaccount_names", "sa"},
		{"ka.req.binding.subjects.serviceaccount_ns_names", "ns:sa"},
		{"ka.req.binding.subjects.group_names", "g"},
		{"ka.req.binding.subject.has_name[alice]", "true"},
		{"jevt.value[/requestObject/spec/containers/1/name]", "b"},
		{"jevt.value[/requestObject/spec/containers/9/name]", "<NA>"},
		{"jevt.value[/user/groups]", "[]"},
	} {
		name, arg, hasArg := splitRef(c.ref)
		f, err := src.Field(name, arg, hasArg)
		if err != nil {
			t.Errorf("%s: %v", c.ref, err)
			continue
		}
		v, ok := f.Extract(ev, nil)
		got := strings.Join(v, "|")
		if !ok {
			got = "<NA>"
		}
		if got != c.want {
			t.Errorf("%s = %q, want %q", c.ref, got, c.want)
		}
	}
}

func TestHasStringSpecial(t *testing.T) {
	slow := func(b []byte) bool {
		for _, c := range b {
			if c == '"' || c == '\\' || c < 0x20 {
				return true
			}
		}
		return false
	}
	check := func(b []byte) {
		if got, want := hasStringSpecial(binary.LittleEndian.Uint64(b)), slow(b); got != want {
			t.Fatalf("hasStringSpecial(%q) = %v, want %v", b, got, want)
		}
	}
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			for _, fill := range []byte{'a', 0xff, 0x80, 0x20, 0x21} {
				b := bytes.Repeat([]byte{fill}, 8)
				b[pos] = byte(c)
				check(b)
			}
		}
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 8)
	for i := 0; i < 200000; i++ {
		binary.LittleEndian.PutUint64(b, rnd.Uint64()|msb*uint64(rnd.IntN(2)))
		check(b)
	}
}
