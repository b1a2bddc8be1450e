package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const validEvent = `{"output":"16:31:56.746609046: Error File below a known binary directory opened for writing (user=root)","hostname":"localhost","priority":"Error","rule":"Write below binary dir","time":"2019-05-17T15:31:56.746609046Z","output_fields":{"evt.time":1507591916746609046,"fd.name":"/bin/hack","user.name":"root"}}`

func TestDecodeValid(t *testing.T) {
	ev, err := Decode(strings.NewReader(validEvent))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Priority != Error || ev.PriorityRaw != "Error" || ev.Rule != "Write below binary dir" || ev.Hostname != "localhost" {
		t.Errorf("decoded %+v", ev)
	}
	want := time.Date(2019, 5, 17, 15, 31, 56, 746609046, time.UTC)
	if !ev.Time.Equal(want) {
		t.Errorf("time = %v, want %v", ev.Time, want)
	}
	if n, ok := ev.OutputFields["evt.time"].(json.Number); !ok || n.String() != "1507591916746609046" {
		t.Errorf("evt.time = %#v, want json.Number 1507591916746609046", ev.OutputFields["evt.time"])
	}
}

func TestDecodePriorities(t *testing.T) {
	cases := map[string]Priority{
		"Emergency": Emergency, "ALERT": Alert, "critical": Critical, "Error": Error, "warning": Warning,
		"WARN": Warning, "Notice": Notice, "Informational": Informational, "info": Informational, "INFO": Informational,
		"debug": Debug, "DeBuG": Debug,
	}
	for raw, want := range cases {
		body := `{"priority":"` + raw + `","rule":"r","time":"2024-01-01T00:00:00Z"}`
		ev, err := Decode(strings.NewReader(body))
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if ev.Priority != want || ev.PriorityRaw != raw {
			t.Errorf("%s: priority %v raw %q, want %v raw %q", raw, ev.Priority, ev.PriorityRaw, want, raw)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	const okTail = `"rule":"r","time":"2024-01-01T00:00:00Z"`
	cases := []struct {
		name, body string
		want       []string // substrings of the message
	}{
		{"empty body", ``, []string{"empty body"}},
		{"whitespace body", "  \n", []string{"empty body"}},
		{"unknown priority", `{"priority":"bogus",` + okTail + `}`, []string{`priority "bogus" is not one of`, "emergency", "informational (or info)", "debug"}},
		{"empty priority", `{"priority":"",` + okTail + `}`, []string{`priority "" is not one of`}},
		{"missing priority", `{` + okTail + `}`, []string{`missing "priority"`}},
		{"null priority", `{"priority":null,` + okTail + `}`, []string{`missing "priority"`}},
		{"missing rule", `{"priority":"info","time":"2024-01-01T00:00:00Z"}`, []string{`missing or empty "rule"`}},
		{"empty rule", `{"priority":"info","rule":"","time":"2024-01-01T00:00:00Z"}`, []string{`missing or empty "rule"`}},
		{"missing time", `{"priority":"info","rule":"r"}`, []string{`missing "time"`, "RFC 3339"}},
		{"bad time", `{"priority":"info","rule":"r","time":"yesterday"}`, []string{`"time" "yesterday" is not an RFC 3339 timestamp`}},
		{"zero time", `{"priority":"info","rule":"r","time":"0001-01-01T00:00:00Z"}`, []string{`"time" is the zero time`}},
		{"time as number", `{"priority":"info","rule":"r","time":12}`, []string{`field "time" must be a string`, "got JSON number"}},
		{"priority as number", `{"priority":3,` + okTail + `}`, []string{`field "priority" must be a string`, "got JSON number", "offset"}},
		{"rule as object", `{"priority":"info","rule":{},"time":"2024-01-01T00:00:00Z"}`, []string{`field "rule" must be a string`, "got JSON object"}},
		{"output_fields as array", `{"priority":"info",` + okTail + `,"output_fields":[1]}`, []string{`field "output_fields" must be an object`, "got JSON array"}},
		{"tags as numbers", `{"priority":"info",` + okTail + `,"tags":[1]}`, []string{`field "tags" must be an array of strings`}},
		{"hostname as bool", `{"priority":"info",` + okTail + `,"hostname":true}`, []string{`field "hostname" must be a string`, "got JSON bool"}},
		{"array body", `[]`, []string{"body must be a JSON object", "array"}},
		{"null body", `null`, []string{"body must be a JSON object", "null"}},
		{"syntax error", `{"priority":"info",,}`, []string{"invalid JSON at offset 20"}},
		{"truncated", `{"priority":"info"`, []string{"unexpected end of body"}},
		{"trailing object", `{"priority":"info",` + okTail + `} {}`, []string{"unexpected data after the event at offset"}},
		{"trailing brace", `{"priority":"info",` + okTail + `}}`, []string{"unexpected data after the event at offset"}},
		{"trailing garbage", `{"priority":"info",` + okTail + `}x`, []string{"unexpected data after the event at offset"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := Decode(strings.NewReader(c.body))
			if err == nil {
				t.Fatalf("accepted %q as %+v", c.body, ev)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *ValidationError: %v", err, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDecodeTrailingWhitespaceAccepted(t *testing.T) {
	if _, err := Decode(strings.NewReader(validEvent + "\n\t \n")); err != nil {
		t.Fatal(err)
	}
}

// errReader fails after its data, like http.MaxBytesReader past the limit.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestDecodeKeepsReadError(t *testing.T) {
	cause := errors.New("http: request body too large")
	for _, body := range []string{`{"priority":"info","rule":"r","ti`, validEvent + "   "} {
		_, err := Decode(&errReader{data: []byte(body), err: cause})
		if !errors.Is(err, cause) {
			t.Errorf("body %.20q: error %v does not wrap the read error", body, err)
		}
	}
}

func TestJSONFieldOrderAndNumbers(t *testing.T) {
	ev, err := Decode(strings.NewReader(`{"hostname":"h","tags":["b","a"],"source":"syscall","output_fields":{"evt.time":1507591916746609046,"f":1.50,"big":123456789012345678901234567890},"time":"2019-05-17T15:31:56.746609046Z","rule":"r","priority":"warn","output":"o","uuid":"u-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"uuid":"u-1","output":"o","priority":"Warning","rule":"r","time":"2019-05-17T15:31:56.746609046Z","output_fields":{"big":123456789012345678901234567890,"evt.time":1507591916746609046,"f":1.50},"source":"syscall","tags":["b","a"],"hostname":"h"}`
	if got := string(ev.JSON()); got != want {
		t.Errorf("JSON()\n got %s\nwant %s", got, want)
	}
	m, err := json.Marshal(ev)
	if err != nil || string(m) != want {
		t.Errorf("json.Marshal = %s, %v", m, err)
	}
}

func TestJSONOmitsEmptyOptionalsAndNeverNullFields(t *testing.T) {
	ev := &Event{Output: "o", Priority: Notice, Rule: "r", Time: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	want := `{"output":"o","priority":"Notice","rule":"r","time":"2024-01-02T03:04:05.000000000Z","output_fields":{},"source":""}`
	if got := string(ev.JSON()); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestJSONNoHTMLEscaping(t *testing.T) {
	ev := &Event{Output: `<script>alert("x&y")</script>`, Priority: Debug, Rule: "a<b>&c", Time: time.Unix(1, 0).UTC(),
		OutputFields: map[string]any{"fd.name": "/tmp/a&b<c>"}}
	got := string(ev.JSON())
	for _, s := range []string{`<script>alert(\"x&y\")</script>`, `"rule":"a<b>&c"`, `"/tmp/a&b<c>"`} {
		if !strings.Contains(got, s) {
			t.Errorf("%s does not contain %s", got, s)
		}
	}
	if strings.Contains(got, `\u003c`) || strings.Contains(got, `\u0026`) {
		t.Errorf("HTML escaped: %s", got)
	}
	if bytes.HasSuffix(ev.JSON(), []byte("\n")) {
		t.Error("JSON ends with a newline")
	}
}

func TestCloneIsIndependent(t *testing.T) {
	ev := &Event{Rule: "r", Tags: []string{"a"}, OutputFields: map[string]any{"k": "v"}}
	c := ev.Clone()
	c.Tags[0] = "changed"
	c.OutputFields["k"] = "changed"
	if ev.Tags[0] != "a" || ev.OutputFields["k"] != "v" {
		t.Errorf("clone shares state with the original: %+v", ev)
	}
}

func TestPriorityText(t *testing.T) {
	for p := Debug; p <= Emergency; p++ {
		b, _ := p.MarshalText()
		var q Priority
		if err := q.UnmarshalText(b); err != nil || q != p {
			t.Errorf("%v round-trips to %v, %v", p, q, err)
		}
	}
	var q Priority
	if err := q.UnmarshalText([]byte("loud")); err == nil || !strings.Contains(err.Error(), `"loud"`) {
		t.Errorf("UnmarshalText(loud) = %v", err)
	}
	if Priority(42).String() != "" || Priority(-1).String() != "" {
		t.Error("out-of-range priority has a name")
	}
}

// TestSampleEvents decodes every sample event of the repository's test data (Falco's and
// falcosidekick's samples, see testdata/NOTICE) and checks it round-trips.
func TestSampleEvents(t *testing.T) {
	// The module root's testdata, by relative path: internal/goldens, which locates it for
	// the other packages, imports this one.
	dir := filepath.Join("..", "..", "testdata", "falcosidekick", "events")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sample events in %s: %v", dir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := Decode(bytes.NewReader(b))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		checkRoundTrip(t, ev)
	}
}

// checkRoundTrip re-encodes ev and requires Decode to accept it with the same fields.
func checkRoundTrip(t *testing.T, ev *Event) {
	t.Helper()
	body := ev.JSON()
	again, err := Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("re-encoded event rejected: %v\n%s", err, body)
	}
	if again.UUID != ev.UUID || again.Output != ev.Output || again.Priority != ev.Priority || again.Rule != ev.Rule ||
		again.Source != ev.Source || again.Hostname != ev.Hostname {
		t.Fatalf("scalar fields changed:\n%+v\n%+v", ev, again)
	}
	if !again.Time.Equal(ev.Time) || again.Time.Format(time.RFC3339Nano) != ev.Time.Format(time.RFC3339Nano) {
		t.Fatalf("time changed: %v -> %v", ev.Time, again.Time)
	}
	if len(ev.Tags) != len(again.Tags) || (len(ev.Tags) > 0 && !reflect.DeepEqual(ev.Tags, again.Tags)) {
		t.Fatalf("tags changed: %q -> %q", ev.Tags, again.Tags)
	}
	if len(ev.OutputFields) != len(again.OutputFields) || (len(ev.OutputFields) > 0 && !reflect.DeepEqual(ev.OutputFields, again.OutputFields)) {
		t.Fatalf("output_fields changed: %#v -> %#v", ev.OutputFields, again.OutputFields)
	}
	if !bytes.Equal(again.JSON(), body) {
		t.Fatalf("second encoding differs:\n%s\n%s", body, again.JSON())
	}
}
