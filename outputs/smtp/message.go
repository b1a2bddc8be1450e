package smtp

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	htmltemplate "html/template"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"sort"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// composer builds the RFC 5322 message of an event.
type composer struct {
	from     string // From header (display name encoded)
	to       string // To header
	domain   string // right-hand side of Message-ID
	html     bool
	subject  *texttemplate.Template
	boundary func() string // multipart boundary; random, fixed in tests
}

func newComposer(c *Config) (*composer, error) {
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return nil, fmt.Errorf("smtp.from: %w", err)
	}
	var to []string
	for _, a := range recipients(c.To) {
		addr, err := mail.ParseAddress(a)
		if err != nil {
			return nil, fmt.Errorf("smtp.to: %w", err)
		}
		to = append(to, headerAddress(addr))
	}
	subj, err := parseSubject(c.SubjectTemplate)
	if err != nil {
		return nil, fmt.Errorf("smtp.subjecttemplate: %w", err)
	}
	domain := "saker.invalid"
	if i := strings.LastIndexByte(from.Address, '@'); i >= 0 && i < len(from.Address)-1 {
		domain = from.Address[i+1:]
	}
	return &composer{from: headerAddress(from), to: strings.Join(to, ", "), domain: domain,
		html: !strings.EqualFold(c.OutputFormat, "text"), subject: subj, boundary: randomBoundary}, nil
}

// headerAddress writes a bare address as it is (falcosidekick's spelling) and one with a
// display name in RFC 5322 form, the name encoded when needed.
func headerAddress(a *mail.Address) string {
	if a.Name == "" {
		return a.Address
	}
	return a.String()
}

func randomBoundary() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "saker-" + hex.EncodeToString(b[:])
}

// compose renders the whole message, headers and body, with CRLF line ends.
func (m *composer) compose(ev *event.Event) ([]byte, error) {
	ev = outputs.TruncateLongFields(ev)
	var subj strings.Builder
	if err := m.subject.Execute(&subj, ev); err != nil {
		return nil, fmt.Errorf("subject template: %w", err)
	}
	view := newView(ev)
	var text bytes.Buffer
	if err := textTmpl.Execute(&text, view); err != nil {
		return nil, fmt.Errorf("text body: %w", err)
	}

	var buf bytes.Buffer
	header(&buf, "From", m.from)
	header(&buf, "To", m.to)
	header(&buf, "Subject", encodeHeader(subj.String()))
	header(&buf, "Date", ev.Time.Format(time.RFC1123Z))
	header(&buf, "Message-ID", m.messageID(ev))
	header(&buf, "MIME-Version", "1.0")
	header(&buf, "X-Falco-Rule", encodeHeader(ev.Rule))
	header(&buf, "X-Falco-Priority", ev.Priority.String())
	if !m.html {
		header(&buf, "Content-Type", `text/plain; charset="UTF-8"`)
		header(&buf, "Content-Transfer-Encoding", "quoted-printable")
		buf.WriteString("\r\n")
		if err := writeQP(&buf, text.Bytes()); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}

	var html bytes.Buffer
	if err := htmlTmpl.Execute(&html, view); err != nil {
		return nil, fmt.Errorf("html body: %w", err)
	}
	mw := multipart.NewWriter(&buf)
	if err := mw.SetBoundary(m.boundary()); err != nil {
		return nil, err
	}
	header(&buf, "Content-Type", "multipart/alternative; boundary="+mw.Boundary())
	buf.WriteString("\r\n")
	for _, part := range []struct {
		ctype string
		body  []byte
	}{{`text/plain; charset="UTF-8"`, text.Bytes()}, {`text/html; charset="UTF-8"`, html.Bytes()}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {part.ctype}, "Content-Transfer-Encoding": {"quoted-printable"}})
		if err != nil {
			return nil, err
		}
		if err := writeQP(w, part.body); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	buf.WriteString("\r\n")
	return buf.Bytes(), nil
}

// messageID is stable per event, so that a retried delivery the server did accept shows up
// as a duplicate mail clients can fold.
func (m *composer) messageID(ev *event.Event) string {
	id := ev.UUID
	if id == "" || strings.ContainsAny(id, "<>@ \r\n\t") {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	return "<" + id + "@" + m.domain + ">"
}

func header(buf *bytes.Buffer, name, value string) {
	buf.WriteString(fold(name + ": " + value))
	buf.WriteString("\r\n")
}

// encodeHeader makes text safe for a header: control characters (a CR or LF would inject
// headers) become spaces, surrounding spaces go, and non-ASCII text is RFC 2047 encoded.
func encodeHeader(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return mime.QEncoding.Encode("utf-8", strings.TrimSpace(s))
}

// fold breaks a header line before spaces so that lines stay under 78 characters where
// possible (RFC 5322 2.2.3); unfolding (removing the CRLFs) restores the original text.
func fold(line string) string {
	const limit = 76
	if len(line) <= limit {
		return line
	}
	// Chunks start at a space that follows a non-space, so no line is only whitespace.
	var chunks []string
	start := 0
	for i := 1; i < len(line); i++ {
		if line[i] == ' ' && line[i-1] != ' ' {
			chunks = append(chunks, line[start:i])
			start = i
		}
	}
	chunks = append(chunks, line[start:])
	var out strings.Builder
	cur := 0
	for i, c := range chunks {
		if i > 1 && cur+len(c) > limit {
			out.WriteString("\r\n")
			cur = 0
		}
		out.WriteString(c)
		cur += len(c)
	}
	return out.String()
}

func writeQP(w interface{ Write([]byte) (int, error) }, body []byte) error {
	qp := quotedprintable.NewWriter(w)
	if _, err := qp.Write(body); err != nil {
		return err
	}
	return qp.Close()
}

// field is one output field rendered for the bodies.
type field struct{ Key, Value string }

// view is what the body templates see: every value already rendered as text.
type view struct {
	Priority, Output, Rule, Source, Hostname, Tags, Time, UUID string
	Color                                                      string
	Fields                                                     []field
}

func newView(ev *event.Event) view {
	v := view{Priority: ev.Priority.String(), Output: ev.Output, Rule: ev.Rule, Source: ev.Source,
		Hostname: ev.Hostname, Tags: strings.Join(ev.Tags, " "), Time: ev.Time.UTC().Format(time.RFC3339Nano),
		UUID: ev.UUID, Color: colors[ev.Priority]}
	if v.Color == "" {
		v.Color = "#858585"
	}
	keys := make([]string, 0, len(ev.OutputFields))
	for k := range ev.OutputFields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v.Fields = append(v.Fields, field{k, event.FieldText(ev.OutputFields[k])})
	}
	return v
}

// colors are falcosidekick's priority colours.
var colors = map[event.Priority]string{
	event.Emergency: "#e20b0b", event.Alert: "#ff5400", event.Critical: "#ff9000", event.Error: "#ffc700",
	event.Warning: "#ffff00", event.Notice: "#5bffb5", event.Informational: "#68c2ff", event.Debug: "#ccfff2",
}

var textTmpl = texttemplate.Must(texttemplate.New("text").Parse(`Priority: {{ .Priority }}
Output: {{ .Output }}
Rule: {{ .Rule }}
Source: {{ .Source }}
Hostname: {{ .Hostname }}
Tags: {{ .Tags }}
Time: {{ .Time }}

--Fields--
{{ range .Fields }}{{ .Key }}: {{ .Value }}
{{ end }}`))

var htmlTmpl = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<style type="text/css">
    td{font-family:arial,helvetica,sans-serif;}
</style>
</head>
<body>
<table cellpadding="3" cellspacing="0" style="font-family:arial,helvetica,sans-serif; height:2px; width:700px;">
    <tbody>
        <tr>
            <td style="background-color:{{ .Color }}; width:700px; text-align:center;"><span style="font-size:12px; color:#fff;"><strong>{{ .Priority }}</strong></span></td>
        </tr>
    </tbody>
</table>
<table cellpadding="5" cellspacing="0" style="font-family:arial,helvetica,sans-serif; width:700px; font-size:13px">
    <tbody>
        <tr>
            <td style="background-color:#858585"><span style="font-size:14px;color:#fff;"><strong>Output</strong></span></td>
            <td style="background-color:#d1d6da">{{ .Output }}</td>
        </tr>
        <tr>
            <td style="background-color:#858585"><span style="font-size:14px;color:#fff;"><strong>Rule</strong></span></td>
            <td style="background-color:#d1d6da">{{ .Rule }}</td>
        </tr>
        <tr>
            <td style="background-color:#858585"><span style="font-size:14px;color:#fff;"><strong>Source</strong></span></td>
            <td style="background-color:#d1d6da">{{ .Source }}</td>
        </tr>
        <tr>
            <td style="background-color:#858585"><span style="font-size:14px;color:#fff;"><strong>Hostname</strong></span></td>
            <td style="background-color:#d1d6da">{{ .Hostname }}</td>
        </tr>
        <tr>
            <td style="background-color:#858585"><span style="font-size:14px;color:#fff;"><strong>Tags</strong></span></td>
            <td style="background-color:#d1d6da">{{ .Tags }}</td>
        </tr>
        <tr>
            <td style="background-color:#858585"><span style="font-size:14px;color:#fff;"><strong>Time</strong></span></td>
            <td style="background-color:#d1d6da">{{ .Time }}</td>
        </tr>
    </tbody>
</table>
<br>
<table cellpadding="3" cellspacing="0" style="font-family:arial,helvetica,sans-serif; height:2px; width:700px; font-size:13px">
    <tbody>
        <tr>
            <td style="background-color: #858585; width:700px; text-align:center;"><span style="font-size:12px; color:#fff;"><strong>Fields</strong></span></td>
        </tr>
    </tbody>
</table>
<table cellpadding="3" cellspacing="0" style="font-family:arial,helvetica,sans-serif; height:2px; width:700px; font-size:13px">
    <tbody>{{ range .Fields }}
        <tr>
            <td width="1" style="background-color:#858585"><span style="font-size:14px; color:#fff;"><strong>{{ .Key }}</strong></span></td>
            <td style="background-color:#d1d6da">{{ .Value }}</td>
        </tr>{{ end }}
    </tbody>
</table>
</body>
</html>
`))
