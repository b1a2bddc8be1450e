package syslog

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/internal/deliverytest"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/internal/testpeers"
	"github.com/saker-dev/saker/outputs"
)

func newOutput(t *testing.T, port int, mod func(*Config)) *Syslog {
	t.Helper()
	c := defaults()
	c.Host, c.Port = "127.0.0.1", strconv.Itoa(port)
	if mod != nil {
		mod(c)
	}
	s, err := New(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// rfc5424 matches the header saker writes.
var rfc5424 = regexp.MustCompile(`^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) falco - falco - (.*)$`)

// TestMessage: an RFC 5424 header with the priority's severity, the event's time and host,
// and the Falco JSON falcosidekick sent as the message.
func TestMessage(t *testing.T) {
	evs := goldens.Events(t, func(n string) string { return "uuid-" + n })
	s := newOutput(t, 514, nil)
	for _, name := range goldens.Names(evs) {
		ev := evs[name]
		m := rfc5424.FindStringSubmatch(string(s.Message(ev)))
		if m == nil {
			t.Fatalf("%s: not RFC 5424: %s", name, s.Message(ev))
		}
		if pri, _ := strconv.Atoi(m[1]); pri != 16*8+severities[ev.Priority] || m[3] != headerField(ev.Hostname, 255) {
			t.Errorf("%s: PRI %s, host %s", name, m[1], m[3])
		}
		if ts, _ := time.Parse(time.RFC3339Nano, m[2]); !ts.Equal(ev.Time.Truncate(time.Microsecond)) {
			t.Errorf("%s: timestamp %s for %v", name, m[2], ev.Time)
		}
		rec := goldens.Recorded(t, "syslog-json-tcp", name).Data
		var fsk, ours map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(rec[strings.Index(rec, "]: ")+3:])), &fsk); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(m[4]), &ours); err != nil {
			t.Fatal(err)
		}
		ours["uuid"] = fsk["uuid"]
		goldens.NormalizeTime(fsk)
		goldens.NormalizeTime(ours)
		if a, b := fmt.Sprint(fsk), fmt.Sprint(ours); a != b {
			t.Errorf("%s: message\n%s\nfalcosidekick sent\n%s", name, b, a)
		}
	}
}

// parseCEF splits a CEF record into its 7 header fields and its extension, undoing the
// escapes, as a SIEM's parser does; it fails on an unescaped separator.
func parseCEF(t *testing.T, rec string) (header []string, ext map[string]string) {
	t.Helper()
	var cur strings.Builder
	i := 0
	for len(header) < 7 {
		if i >= len(rec) {
			t.Fatalf("CEF header cut short: %q", rec)
		}
		switch c := rec[i]; {
		case c == '\\' && i+1 < len(rec):
			cur.WriteByte(rec[i+1])
			i += 2
			continue
		case c == '|':
			header = append(header, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
		i++
	}
	ext = map[string]string{}
	rest := rec[i:]
	keys := regexp.MustCompile(`(?:^| )([a-z]+)=`).FindAllStringSubmatchIndex(rest, -1)
	for n, k := range keys {
		end := len(rest)
		if n+1 < len(keys) {
			end = keys[n+1][0]
		}
		raw := rest[k[1]:end]
		if strings.Contains(strings.ReplaceAll(raw, `\=`, ""), "=") || strings.ContainsAny(raw, "\n\r") {
			t.Fatalf("unescaped = or line break in %q", raw)
		}
		v := strings.NewReplacer(`\\`, `\`, `\=`, `=`, `\n`, "\n", `\r`, "\r").Replace(raw)
		ext[rest[k[2]:k[3]]] = v
	}
	return header, ext
}

// TestCEF: CEF records carry falcosidekick's header and fields, and hostile text survives a
// CEF parser intact.
func TestCEF(t *testing.T) {
	evs := goldens.Events(t, func(n string) string { return "uuid-" + n })
	for _, name := range goldens.Names(evs) {
		header, ext := parseCEF(t, CEF(evs[name]))
		rec := goldens.Recorded(t, "syslog-cef-tcp", name).Data
		fsk := strings.Split(rec[strings.Index(rec, "CEF:"):], "|")
		if strings.Join(header[:5], "|") != strings.Join(fsk[:5], "|") || header[6] != fsk[6] || header[5] != evs[name].Rule {
			t.Errorf("%s: header %q, falcosidekick %q", name, header, fsk[:7])
		}
		if ext["msg"] != evs[name].Output || ext["uuid"] != "uuid-"+name || ext["hostname"] != evs[name].Hostname {
			t.Errorf("%s: extension %v", name, ext)
		}
	}
	hostile := &event.Event{Rule: `a|b\c`, Output: "x=1 y=\\2\nz|3", Priority: event.Alert, Time: time.Now(), Source: "s",
		OutputFields: map[string]any{"k": "v=w"}}
	header, ext := parseCEF(t, CEF(hostile))
	if header[5] != hostile.Rule || ext["msg"] != hostile.Output || ext["outputfields"] != "k:v=w" || header[6] != "9" {
		t.Errorf("hostile event read back as %q %v", header, ext)
	}
}

// rsyslog runs Debian's rsyslogd with TCP and UDP inputs writing every message it
// parses, as RFC 5424 fields, to a file.
func rsyslog(t *testing.T) (tcpPort, udpPort int, out string) {
	bin := testpeers.Bin(t, "rsyslogd")
	dir := t.TempDir()
	tcpPort, udpPort = testpeers.FreePort(t), testpeers.FreePort(t)
	out = filepath.Join(dir, "messages")
	conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imtcp")
module(load="imudp")
input(type="imtcp" port="%d")
input(type="imudp" port="%d" address="127.0.0.1")
template(name="fields" type="string" string="%%syslogfacility-text%%|%%syslogseverity-text%%|%%timereported:::date-rfc3339%%|%%hostname%%|%%app-name%%|%%msg%%\n")
*.* action(type="omfile" file=%q template="fields")
`, dir, tcpPort, udpPort, out)
	cf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	testpeers.Start(t, "rsyslogd", []string{bin, "-n", "-f", cf, "-i", filepath.Join(dir, "pid")}, nil,
		func() bool { return testpeers.PortOpen(tcpPort) }, 15*time.Second)
	return tcpPort, udpPort, out
}

func readLines(path string) []string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestRsyslogReadsBack sends the recorded events over TCP and UDP, JSON and CEF, to a real
// rsyslog and reads back what it parsed: facility, severity, time, host, app and message.
func TestRsyslogReadsBack(t *testing.T) {
	tcpPort, udpPort, out := rsyslog(t)
	evs := goldens.Events(t, func(n string) string { return "uuid-" + n })
	names := goldens.Names(evs)
	sent := 0
	for _, proto := range []string{"tcp", "udp"} {
		for _, format := range []string{"json", "cef"} {
			port := tcpPort
			if proto == "udp" {
				port = udpPort
			}
			s := newOutput(t, port, func(c *Config) { c.Protocol, c.Format = proto, format })
			for _, name := range names {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := s.Send(ctx, evs[name]); err != nil {
					t.Fatalf("%s %s %s: %v", proto, format, name, err)
				}
				cancel()
				sent++
			}
		}
	}
	// rsyslog writes its own start message too, and its TCP and UDP inputs run apart:
	// messages are matched by app and uuid, not by position.
	falcoLines := func() []string {
		var ls []string
		for _, l := range readLines(out) {
			if strings.Contains(l, "|falco|") {
				ls = append(ls, l)
			}
		}
		return ls
	}
	testpeers.Eventually(t, 15*time.Second, func() bool { return len(falcoLines()) >= sent }, "rsyslog wrote %d of %d messages", len(falcoLines()), sent)
	seen := map[string]int{}
	for _, line := range falcoLines() {
		f := strings.SplitN(line, "|", 6)
		var uuid, format string
		if strings.HasPrefix(f[5], "CEF:0|") {
			format = "cef"
			if m := regexp.MustCompile(`\buuid=(\S+)`).FindStringSubmatch(f[5]); m != nil {
				uuid = m[1]
			}
		} else {
			format = "json"
			var got map[string]any
			if err := json.Unmarshal([]byte(f[5]), &got); err != nil {
				t.Errorf("JSON message %q: %v", f[5], err)
				continue
			}
			uuid, _ = got["uuid"].(string)
		}
		ev := evs[strings.TrimPrefix(uuid, "uuid-")]
		if ev == nil {
			t.Errorf("unknown message %q", line)
			continue
		}
		sev := map[event.Priority]string{event.Critical: "crit", event.Error: "err", event.Warning: "warning", event.Debug: "debug"}[ev.Priority]
		ts, err := time.Parse(time.RFC3339Nano, f[2])
		if f[0] != "local0" || f[1] != sev || err != nil || !ts.Equal(ev.Time.Truncate(time.Microsecond)) {
			t.Errorf("%q for %s at %v", line, ev.Priority, ev.Time)
		}
		seen[format+" "+uuid]++
	}
	for _, name := range names {
		for _, format := range []string{"json", "cef"} {
			if n := seen[format+" uuid-"+name]; n != 2 {
				t.Errorf("%s %s: %d messages, want one over TCP and one over UDP", format, name, n)
			}
		}
	}
}

// TestReceiverRestartLosesNothing: messages sent through the engine while the server is
// down and after it restarts all arrive over TCP.
func TestReceiverRestartLosesNothing(t *testing.T) {
	srv := testpeers.StartLineServer(t, nil)
	eng := deliverytest.Start(t, newOutput(t, srv.Port, nil), deliverytest.Policy(""))
	for i := range 5 {
		deliverytest.Publish(t, eng, &event.Event{Rule: "r", Priority: event.Notice, Time: time.Now(), Output: fmt.Sprintf("message %d", i)})
	}
	testpeers.Eventually(t, 10*time.Second, func() bool { return len(srv.Lines()) == 5 }, "first messages")
	srv.Stop()
	for i := 5; i < 10; i++ {
		deliverytest.Publish(t, eng, &event.Event{Rule: "r", Priority: event.Notice, Time: time.Now(), Output: fmt.Sprintf("message %d", i)})
	}
	deliverytest.WaitFailing(t, eng)
	srv.Start(t)
	testpeers.Eventually(t, 20*time.Second, func() bool { return len(srv.Lines()) >= 10 }, "messages after the restart")
	eng.Stop(time.Second)
	all := strings.Join(srv.Lines(), "\n")
	for i := range 10 {
		if c := strings.Count(all, fmt.Sprintf(`"message %d"`, i)); c != 1 {
			t.Errorf("message %d received %d times", i, c)
		}
	}
}

// TestTLS: protocol tls reaches a TLS receiver that requires the client certificate.
func TestTLS(t *testing.T) {
	pki := testpeers.NewPKI(t)
	srv := testpeers.StartLineServer(t, &tls.Config{Certificates: []tls.Certificate{pki.ServerCert}, ClientCAs: pki.Pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	c := defaults()
	c.Host, c.Port, c.Protocol, c.MutualTLS = "127.0.0.1", strconv.Itoa(srv.Port), "tls", true
	s, err := New(c, outputs.Env{TLS: httpoutTLSFiles(pki)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(context.Background(), &event.Event{Rule: "over tls", Priority: event.Notice, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	testpeers.Eventually(t, 5*time.Second, func() bool { return len(srv.Lines()) == 1 }, "no message over TLS")
}

func TestValidate(t *testing.T) {
	for key, mod := range map[string]func(*Config){
		"syslog.protocol": func(c *Config) { c.Protocol = "http" },
		"syslog.format":   func(c *Config) { c.Format = "leef" },
		"syslog.facility": func(c *Config) { c.Facility = "local9" },
		"syslog.port":     func(c *Config) { c.Port = "five" },
	} {
		c := defaults()
		c.Host = "siem"
		mod(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v, want an error naming %s", err, key)
		}
	}
}

func httpoutTLSFiles(p *testpeers.PKI) httpout.TLSFiles {
	return httpout.TLSFiles{CertFile: p.ClientCertFile, KeyFile: p.ClientKeyFile, CACertFile: p.CAFile}
}
