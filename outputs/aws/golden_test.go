package aws

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
)

func goldenEvents(t *testing.T) map[string]*event.Event {
	t.Helper()
	return goldens.Events(t, func(string) string { return "<VARIES>" })
}

// checkGolden compares got with testdata/golden/<dir>/<name>.json (see goldens.Check).
func checkGolden(t *testing.T, dir, name string, got []byte) {
	t.Helper()
	goldens.Check(t, filepath.Join("testdata", "golden", dir, name+".json"), got)
}

func indentJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

// falcosidekickPayload is what falcosidekick's SQS, SNS rawjson and Lambda outputs send for an
// event: its json.Marshal of the payload, recorded by its webhook output (the same bytes).
func falcosidekickPayload(t *testing.T, name string) any {
	t.Helper()
	return decodeJSON(t, []byte(goldens.Recorded(t, "webhook", name).Body))
}

// lambdaInvocation is an Invoke request as a Lambda endpoint receives it.
type lambdaInvocation struct {
	Path, InvocationType, LogType string
	Payload                       []byte
}

// fakeLambda is a Lambda endpoint that accepts every invocation (200, empty result) and
// hands each request to the test.
func fakeLambda(t *testing.T) (*httptest.Server, <-chan lambdaInvocation) {
	t.Helper()
	got := make(chan lambdaInvocation, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- lambdaInvocation{Path: r.URL.Path, InvocationType: r.Header.Get("X-Amz-Invocation-Type"),
			LogType: r.Header.Get("X-Amz-Log-Type"), Payload: body}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// invoke sends ev with the lambda output's Send to a fake endpoint and returns the
// invocation it received.
func invoke(t *testing.T, l *Lambda, got <-chan lambdaInvocation, ev *event.Event) lambdaInvocation {
	t.Helper()
	if err := l.Send(context.Background(), ev); err != nil {
		t.Fatalf("Send: %v", err)
	}
	select {
	case inv := <-got:
		return inv
	default:
		t.Fatal("Send returned without invoking the function")
		return lambdaInvocation{}
	}
}

// TestPayloadMatchesFalcosidekick proves the JSON saker sends to SQS, SNS (rawjson) and
// Lambda decodes to exactly what falcosidekick sends, key for key and value for value,
// including the numbers, null and list fields; only the escaping of <>& differs.
func TestPayloadMatchesFalcosidekick(t *testing.T) {
	evs := goldenEvents(t)
	srv, invocations := fakeLambda(t)
	l := newTestLambda(t, srv.URL, nil)
	for _, name := range goldens.Names(evs) {
		ev := evs[name]
		want := falcosidekickPayload(t, name)
		for what, body := range map[string]string{
			"sqs body":       sdkaws.ToString(sqsEntry(0, ev).MessageBody),
			"sns rawjson":    sdkaws.ToString(snsInput("arn:aws:sns:us-east-1:000000000000:falco", true, ev).Message),
			"lambda payload": string(invoke(t, l, invocations, ev).Payload),
			// S3 objects, Kinesis and Data Streams records and CloudWatch Logs messages
			// are the event's Falco JSON too (read back byte for byte by their tests).
			"s3, kinesis, cloudwatchlogs": string(ev.JSON()),
		} {
			got := decodeJSON(t, []byte(body))
			if m, ok := got.(map[string]any); ok {
				goldens.NormalizeTime(m)
			}
			if m, ok := want.(map[string]any); ok {
				goldens.NormalizeTime(m)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s differs from falcosidekick's:\n got: %s\nwant: %v", name, what, body, want)
			}
			if strings.Contains(body, `\u003c`) || strings.Contains(body, `\u0026`) {
				t.Errorf("%s: %s escapes <>& (a falcosidekick defect): %s", name, what, body)
			}
		}
	}
}

// sqsGolden is an SQS entry as the golden files show it.
type sqsGolden struct {
	Body       any               `json:"body"`
	Attributes map[string]string `json:"attributes"`
}

func TestSQSGolden(t *testing.T) {
	evs := goldenEvents(t)
	for _, name := range goldens.Names(evs) {
		e := sqsEntry(3, evs[name])
		if sdkaws.ToString(e.Id) != "3" {
			t.Errorf("entry id = %q, want the batch index", sdkaws.ToString(e.Id))
		}
		g := sqsGolden{Body: decodeJSON(t, []byte(sdkaws.ToString(e.MessageBody))), Attributes: map[string]string{}}
		for k, v := range e.MessageAttributes {
			g.Attributes[k] = sdkaws.ToString(v.DataType) + ":" + sdkaws.ToString(v.StringValue)
		}
		for _, must := range []string{"rule", "priority", "source"} {
			if g.Attributes[must] == "" {
				t.Errorf("%s: attribute %s missing: %v", name, must, g.Attributes)
			}
		}
		if len(g.Attributes) > 10 {
			t.Errorf("%s: %d attributes, SQS takes 10", name, len(g.Attributes))
		}
		checkGolden(t, "sqs", name, indentJSON(t, g))
	}
}

// snsGolden is a Publish request as the golden files show it.
type snsGolden struct {
	Message    any               `json:"message"`
	Attributes map[string]string `json:"attributes"`
}

func TestSNSGolden(t *testing.T) {
	evs := goldenEvents(t)
	for _, raw := range []bool{false, true} {
		dir := "sns"
		if raw {
			dir = "sns-rawjson"
		}
		for _, name := range goldens.Names(evs) {
			ev := evs[name]
			in := snsInput("arn:aws:sns:us-east-1:000000000000:falco", raw, ev)
			g := snsGolden{Message: sdkaws.ToString(in.Message), Attributes: map[string]string{}}
			if raw {
				g.Message = decodeJSON(t, []byte(sdkaws.ToString(in.Message)))
			} else if g.Message != ev.Output {
				t.Errorf("%s: message = %q, want the output line", name, g.Message)
			}
			for k, v := range in.MessageAttributes {
				if attributeName(k) != k {
					t.Errorf("%s: attribute name %q is not valid for SNS", name, k)
				}
				g.Attributes[k] = sdkaws.ToString(v.DataType) + ":" + sdkaws.ToString(v.StringValue)
			}
			if !raw {
				// falcosidekick kept only string and number fields; saker keeps every non-null one.
				for field, v := range ev.OutputFields {
					if _, ok := g.Attributes[attributeName(field)]; !ok && v != nil {
						t.Errorf("%s: output field %s (%v) has no attribute", name, field, v)
					}
				}
			}
			checkGolden(t, dir, name, indentJSON(t, g))
		}
	}
}

// TestLambdaGolden checks the Invoke request the lambda output's Send makes, as an endpoint
// receives it: the function's invocation path, the invocation and log types configured, and
// the payload (the golden files).
func TestLambdaGolden(t *testing.T) {
	evs := goldenEvents(t)
	srv, invocations := fakeLambda(t)
	l := newTestLambda(t, srv.URL, nil)
	for _, name := range goldens.Names(evs) {
		inv := invoke(t, l, invocations, evs[name])
		if inv.Path != "/2015-03-31/functions/function/invocations" || inv.InvocationType != "RequestResponse" || inv.LogType != "Tail" {
			t.Errorf("%s: invoked %s with invocation type %q, log type %q; want function \"function\", RequestResponse, Tail",
				name, inv.Path, inv.InvocationType, inv.LogType)
		}
		checkGolden(t, "lambda", name, append(inv.Payload, '\n'))
	}
}

func TestAttributeName(t *testing.T) {
	for in, want := range map[string]string{
		"proc.name":              "proc.name",
		"proc.aname[2]":          "proc.aname.2",
		"jevt.value[/user/name]": "jevt.value._user_name",
		"ka.req.pod.volumes.hostpath[/var/run/docker.sock]": "ka.req.pod.volumes.hostpath._var_run_docker.sock",
		".lead..dots.": "lead.dots",
		"AWS.thing":    "_AWS.thing",
		"amazon.x":     "_amazon.x",
		"with space":   "with_space",
		"ünïcode":      "_n_code",
	} {
		if got := attributeName(in); got != want {
			t.Errorf("attributeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidCharsAndSafeJSON(t *testing.T) {
	if got := validChars("a\x00b\uffffc\td"); got != "a\ufffdb\ufffdc\td" {
		t.Errorf("validChars = %q", got)
	}
	if got := validChars("bad \xff utf8"); got != "bad \ufffd utf8" {
		t.Errorf("validChars(invalid utf8) = %q", got)
	}
	ev := testEvent("odd", event.Warning)
	ev.OutputFields = map[string]any{"f": "x\uffffy\ufffez"}
	body := safeJSON(ev.JSON())
	if strings.ContainsRune(body, '\uffff') || strings.ContainsRune(body, '\ufffe') {
		t.Fatalf("safeJSON left a character SQS refuses: %q", body)
	}
	var back map[string]any
	if err := json.Unmarshal([]byte(body), &back); err != nil {
		t.Fatal(err)
	}
	if got := back["output_fields"].(map[string]any)["f"]; got != "x\uffffy\ufffez" {
		t.Errorf("safeJSON changed the value: %q", got)
	}
}

// FuzzAttributeName proves any field name maps to a valid attribute name or to nothing.
func FuzzAttributeName(f *testing.F) {
	for _, s := range []string{"proc.name", "a[1]", "..", "AWS.x", "é", strings.Repeat("a.", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := attributeName(s)
		if len(n) > 256 || strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".") || strings.Contains(n, "..") {
			t.Fatalf("attributeName(%q) = %q: invalid", s, n)
		}
		l := strings.ToLower(n)
		if strings.HasPrefix(l, "aws.") || strings.HasPrefix(l, "amazon.") {
			t.Fatalf("attributeName(%q) = %q: reserved prefix", s, n)
		}
		for _, r := range n {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
				t.Fatalf("attributeName(%q) = %q: invalid character %q", s, n, r)
			}
		}
		if attributeName(n) != n {
			t.Fatalf("attributeName is not idempotent on %q", n)
		}
	})
}
