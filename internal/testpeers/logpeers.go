package testpeers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Alertmanager is a running prometheus-alertmanager (Debian's package name for the binary).
type Alertmanager struct {
	*Proc
	URL  string
	Port int
}

// StartAlertmanager runs prometheus-alertmanager on port (0 for a free one) with a single
// null receiver and clustering off.
func StartAlertmanager(t testing.TB, port int) *Alertmanager {
	t.Helper()
	bin := Bin(t, "prometheus-alertmanager")
	if port == 0 {
		port = FreePort(t)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "am.yml")
	if err := os.WriteFile(cfg, []byte("route: {receiver: default}\nreceivers: [{name: default}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := Start(t, "alertmanager", []string{bin, "--config.file=" + cfg, "--storage.path=" + dir,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--cluster.listen-address="}, nil,
		func() bool { return HTTPOK(u + "/-/ready") }, 20*time.Second)
	return &Alertmanager{Proc: p, URL: u, Port: port}
}

// AMAlert is an alert as GET /api/v2/alerts returns it.
type AMAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

// Alerts reads the active alerts back; an error reading is an empty list (tests poll).
func (a *Alertmanager) Alerts(t testing.TB) []AMAlert {
	t.Helper()
	resp, err := http.Get(a.URL + "/api/v2/alerts")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out []AMAlert
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil
	}
	return out
}

// VictoriaLogs is a running victoria-logs, which accepts Loki pushes at
// /insert/loki/api/v1/push and Elasticsearch bulk requests at /insert/elasticsearch/_bulk.
type VictoriaLogs struct {
	*Proc
	URL  string
	Port int
}

// StartVictoriaLogs runs victoria-logs on port (0 for a free one).
func StartVictoriaLogs(t testing.TB, port int) *VictoriaLogs {
	t.Helper()
	bin := Bin(t, "victoria-logs")
	if port == 0 {
		port = FreePort(t)
	}
	u := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := Start(t, "victoria-logs", []string{bin, fmt.Sprintf("-httpListenAddr=127.0.0.1:%d", port),
		"-storageDataPath=" + t.TempDir(), "-retentionPeriod=100y", "-futureRetention=100y"}, nil,
		func() bool { return HTTPOK(u + "/health") }, 20*time.Second)
	return &VictoriaLogs{Proc: p, URL: u, Port: port}
}

// Query runs a LogsQL query and returns the matching rows; errors are an empty result
// (tests poll with Eventually).
func (v *VictoriaLogs) Query(t testing.TB, q string) []map[string]any {
	t.Helper()
	resp, err := http.PostForm(v.URL+"/select/logsql/query", url.Values{"query": {q}})
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Logf("logsql %q: %d %s", q, resp.StatusCode, bytes.TrimSpace(b))
		return nil
	}
	var rows []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var row map[string]any
		if json.Unmarshal([]byte(line), &row) == nil {
			rows = append(rows, row)
		}
	}
	return rows
}
