package smtp

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
)

const testUUID = "11111111-2222-4333-8444-555555555555"

func loadEvents(t testing.TB) map[string]*event.Event {
	t.Helper()
	return goldens.Events(t, func(string) string { return testUUID })
}

func goldenComposer(t testing.TB, format string) *composer {
	t.Helper()
	m, err := newComposer(&Config{From: "falco@example.com", To: []string{"soc@example.com,soc2@example.com"},
		OutputFormat: format})
	if err != nil {
		t.Fatal(err)
	}
	m.boundary = func() string { return "saker-test-boundary" }
	return m
}

// parsed is a message reduced to what falcosidekick's and saker's must share.
type parsed struct {
	subject, date, contentType string
	from                       string
	to                         []string
	text                       string
	html                       string
}

func parse(t *testing.T, raw string) parsed {
	t.Helper()
	raw = strings.ReplaceAll(raw, "\r\n", "\n")
	msg, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v\n%s", err, raw)
	}
	var dec mime.WordDecoder
	subj, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	p := parsed{subject: subj, date: msg.Header.Get("Date"), from: msg.Header.Get("From")}
	to, err := msg.Header.AddressList("To")
	if err != nil {
		t.Fatalf("To: %v", err)
	}
	for _, a := range to {
		p.to = append(p.to, a.Address)
	}
	ct, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	p.contentType = ct
	if ct != "multipart/alternative" {
		p.text = decodeBody(t, msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
		return p
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		body := decodeBody(t, part.Header.Get("Content-Transfer-Encoding"), part)
		pct, _, _ := mime.ParseMediaType(strings.TrimSuffix(part.Header.Get("Content-Type"), ";"))
		switch pct {
		case "text/plain":
			p.text = body
		case "text/html":
			p.html = body
		default:
			t.Fatalf("unexpected part %q", pct)
		}
	}
	return p
}

func decodeBody(t *testing.T, cte string, r io.Reader) string {
	t.Helper()
	if strings.EqualFold(cte, "quoted-printable") {
		r = qpReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return string(b)
}

// textFields returns the "key: value" lines of a text part, header lines and fields apart.
func textFields(text string) (head map[string]string, fields map[string]string) {
	head, fields = map[string]string{}, map[string]string{}
	inFields := false
	for _, line := range strings.Split(text, "\n") {
		if line == "--Fields--" {
			inFields = true
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		if inFields {
			fields[k] = v
		} else {
			head[k] = strings.TrimSpace(v)
		}
	}
	return head, fields
}

var tdValue = regexp.MustCompile(`<strong>([^<]*)</strong></span></td>\s*<td style="background-color:#d1d6da">([^<]*)</td>`)

// htmlRows returns the label/value cells of the HTML tables, unescaped.
func htmlRows(s string) map[string]string {
	rows := map[string]string{}
	for _, m := range tdValue.FindAllStringSubmatch(s, -1) {
		rows[html.UnescapeString(m[1])] = html.UnescapeString(m[2])
	}
	return rows
}

// sameValue says whether saker's rendering of a field matches falcosidekick's, where
// falcosidekick's differs only by its defects (null as "<no value>" or empty, lists in Go
// syntax).
func sameValue(saker, fsk string, v any) bool {
	switch x := v.(type) {
	case nil:
		return saker == "null"
	case []any:
		b, _ := json.Marshal(x)
		return saker == string(b)
	}
	return saker == fsk
}

func TestGolden(t *testing.T) {
	evs := loadEvents(t)
	for _, format := range []string{"html", "text"} {
		m := goldenComposer(t, format)
		for name, ev := range evs {
			t.Run(format+"/"+name, func(t *testing.T) {
				got, err := m.compose(ev)
				if err != nil {
					t.Fatal(err)
				}
				goldens.Check(t, filepath.Join("testdata", format, name+".eml"), got)
				for i, line := range strings.Split(string(got), "\r\n") {
					if len(line) > 998 {
						t.Errorf("line %d is %d bytes long", i, len(line))
					}
				}
				if bytes.Contains(bytes.ReplaceAll(got, []byte("\r\n"), nil), []byte("\n")) {
					t.Errorf("bare LF in the message")
				}
				compareWithFalcosidekick(t, format, name, ev, string(got))
			})
		}
	}
}

func compareWithFalcosidekick(t *testing.T, format, name string, ev *event.Event, ours string) {
	us, them := parse(t, ours), parse(t, goldens.Recorded(t, "smtp-"+format, name).Raw)
	if us.subject != them.subject {
		t.Errorf("subject %q, falcosidekick %q", us.subject, them.subject)
	}
	if us.date != them.date || us.from != them.from || strings.Join(us.to, ",") != strings.Join(them.to, ",") {
		t.Errorf("date/from/to %q %q %q, falcosidekick %q %q %q", us.date, us.from, us.to, them.date, them.from, them.to)
	}
	if us.contentType != them.contentType {
		t.Errorf("content type %q, falcosidekick %q", us.contentType, them.contentType)
	}
	uh, uf := textFields(us.text)
	th, tf := textFields(them.text)
	for _, k := range []string{"Priority", "Output", "Rule", "Source", "Hostname", "Tags"} {
		if uh[k] != th[k] {
			t.Errorf("text %s %q, falcosidekick %q", k, uh[k], th[k])
		}
	}
	if tm, err := time.Parse(time.RFC3339Nano, uh["Time"]); err != nil || !tm.Equal(ev.Time) {
		t.Errorf("text Time %q: %v", uh["Time"], err)
	}
	if len(uf) != len(ev.OutputFields) {
		t.Errorf("text has %d fields, the event %d", len(uf), len(ev.OutputFields))
	}
	for k, v := range ev.OutputFields {
		if !sameValue(uf[k], tf[k], v) {
			t.Errorf("text field %s = %q, falcosidekick %q", k, uf[k], tf[k])
		}
	}
	if format == "text" {
		return
	}
	ur, tr := htmlRows(us.html), htmlRows(them.html)
	for _, k := range []string{"Output", "Rule", "Source", "Hostname"} {
		if ur[k] != tr[k] {
			t.Errorf("html %s %q, falcosidekick %q", k, ur[k], tr[k])
		}
	}
	for k, v := range ev.OutputFields {
		if _, ok := ur[k]; !ok {
			t.Errorf("html misses field %s", k)
		} else if !sameValue(ur[k], tr[k], v) {
			t.Errorf("html field %s = %q, falcosidekick %q", k, ur[k], tr[k])
		}
	}
	if strings.Contains(us.html, "<script>") {
		t.Errorf("html carries an unescaped <script>")
	}
}

func TestHeaderInjection(t *testing.T) {
	m := goldenComposer(t, "html")
	ev := &event.Event{UUID: testUUID, Priority: event.Critical, Rule: "r\r\nBcc: victim@example.com",
		Output: "evil\r\nX-Injected: yes", Time: time.Unix(0, 0).UTC()}
	raw, err := m.compose(ev)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("X-Injected") != "" || msg.Header.Get("Bcc") != "" {
		t.Errorf("header injected:\n%s", raw)
	}
}

func TestFold(t *testing.T) {
	long := "Subject: " + strings.Repeat("word ", 60) + strings.Repeat("x", 100) + " end"
	f := fold(long)
	if strings.ReplaceAll(f, "\r\n", "") != long {
		t.Errorf("unfolding does not restore the line")
	}
	for _, l := range strings.Split(f, "\r\n") {
		if len(l) > 76 && !strings.Contains(l, strings.Repeat("x", 100)) {
			t.Errorf("line of %d bytes: %q", len(l), l)
		}
		if strings.TrimSpace(l) == "" {
			t.Errorf("whitespace-only line")
		}
	}
}

// FuzzCompose checks that any output, rule and field value gives a well-formed message whose
// Subject decodes back to the text (control characters as spaces) and that adds no header.
func FuzzCompose(f *testing.F) {
	f.Add("Debug event with <script>alert(\"x&y\")</script> café ☃", "Special <chars> & \"quotes\" rule", "a\r\nb")
	f.Add(strings.Repeat("long output ", 40), "r", "")
	f.Add("\x00\x1b[31m", "\u2028", "=?utf-8?q?x?=")
	m := goldenComposer(f, "html")
	f.Fuzz(func(t *testing.T, output, rule, value string) {
		ev := &event.Event{UUID: testUUID, Priority: event.Warning, Rule: rule, Output: output,
			Time: time.Unix(0, 0).UTC(), OutputFields: map[string]any{"k": value}}
		raw, err := m.compose(ev)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("unparseable message: %v\n%q", err, raw)
		}
		for k := range msg.Header {
			switch k {
			case "From", "To", "Subject", "Date", "Message-Id", "Mime-Version", "Content-Type", "X-Falco-Rule", "X-Falco-Priority":
			default:
				t.Fatalf("unexpected header %q in\n%q", k, raw)
			}
		}
		var dec mime.WordDecoder
		subj, err := dec.DecodeHeader(msg.Header.Get("Subject"))
		want := strings.TrimSpace(strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, "[Warning] "+output))
		if err != nil || subj != want {
			t.Fatalf("subject %q decodes to %q (%v), want %q", msg.Header.Get("Subject"), subj, err, want)
		}
	})
}
