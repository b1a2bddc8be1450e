// Command loadbench is `make bench`'s load test: it measures saker end to end (POST / with
// the webhook output to a local counting sink) on each bus — memory, the embedded spool,
// external JetStream on a nats-server it starts — against a bare net/http server that only
// reads the body and answers 200, in the same run, then posts 100,000 events with the
// output hung to show memory stays bounded. Load comes from wrk when installed, else from a
// built-in closed-loop generator.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	role := flag.String("role", "", "internal: bare | sink | hang")
	addr := flag.String("addr", "127.0.0.1:0", "internal: listen address")
	saker := flag.String("saker", "bin/saker", "saker binary")
	eventFile := flag.String("event", "", "Falco event JSON to post (default: a built-in sample)")
	dur := flag.Duration("d", 10*time.Second, "load duration per target")
	conns := flag.Int("c", 64, "connections")
	memEvents := flag.Int("mem-events", 100000, "events posted with the output hung")
	cpuProfile := flag.String("cpuprofile", "", "only run the memory-bus ingest, with saker writing its CPU profile to this file (make pgo)")
	flag.Parse()
	switch *role {
	case "bare":
		serveBare(*addr)
		return
	case "sink":
		serveSink(*addr, false)
		return
	case "hang":
		serveSink(*addr, true)
		return
	}
	body := []byte(sampleEvent)
	if *eventFile != "" {
		b, err := os.ReadFile(*eventFile)
		if err != nil {
			log.Fatal(err)
		}
		body = b
	}
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	r := &runner{self: self, saker: *saker, body: body, dur: *dur, conns: *conns}
	if *cpuProfile != "" {
		res := r.sakerIngest(busMode{name: "memory bus", args: []string{"--cpuprofile", *cpuProfile}})
		fmt.Printf("profiled ingest: %d accepted, %d delivered, %.0f events/s end to end; profile in %s\n",
			res.got.ok, res.delivered, res.e2eRate, *cpuProfile)
		return
	}
	r.ingest()
	r.memory(*memEvents)
}

const sampleEvent = `{"output":"16:31:56.746609046: Error File below a known binary directory opened for writing (user=root command=touch /bin/hack file=/bin/hack)","hostname":"localhost","priority":"Error","rule":"Write below binary dir","time":"2019-05-17T15:31:56.746609046Z","output_fields":{"evt.time":1507591916746609046,"fd.name":"/bin/hack","proc.cmdline":"touch /bin/hack","user.name":"root"}}`

type runner struct {
	self, saker string
	body        []byte
	dur         time.Duration
	conns       int
}

// load is one load run's outcome.
type load struct {
	ok, non2xx int
	rps        float64 // 2xx per second
	p99        time.Duration
}

// busMode is one way of running saker in the ingest comparison.
type busMode struct {
	name  string
	env   []string
	args  []string   // saker's command line
	extra func() int // CPU ticks of a helper process (the external NATS server) so far
	floor string
}

// ingestResult is one saker run of the ingest comparison.
type ingestResult struct {
	got        load
	delivered  int
	e2eRate    float64
	rss        int
	cpuPerEvUs float64
}

func (r *runner) ingest() {
	barePort := freePort()
	bare := start(r.self, nil, "-role", "bare", "-addr", hostPort(barePort))
	waitPort(barePort)
	base := r.run(fmt.Sprintf("http://127.0.0.1:%d/", barePort))
	stop(bare)

	modes := []busMode{{name: "memory bus", floor: "e2e >= 0.30 of bare, all delivered, RSS < 200 MB"}}
	spool, err := os.MkdirTemp("", "loadbench-spool")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(spool)
	modes = append(modes, busMode{name: "embedded spool", env: []string{"SPOOL_PATH=" + spool},
		floor: "e2e >= 0.20 of bare, all delivered, RSS < 250 MB"})
	if bin := natsServer(); bin != "" {
		store, err := os.MkdirTemp("", "loadbench-nats")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(store)
		port := freePort()
		nats := start(bin, nil, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", store)
		defer stop(nats)
		waitPort(port)
		modes = append(modes, busMode{name: "external JetStream", env: []string{fmt.Sprintf("BUS_JETSTREAM_URL=nats://127.0.0.1:%d", port)},
			extra: func() int { return cpuTicks(nats.Process.Pid) }, floor: "no floor (the NATS server's CPU counted in CPU/event)"})
	} else {
		fmt.Fprintln(os.Stderr, "loadbench: nats-server not found in $SAKER_PEERS or PATH (make peers): external JetStream skipped")
	}
	results := make([]ingestResult, len(modes))
	for i, m := range modes {
		results[i] = r.sakerIngest(m)
	}

	fmt.Printf("\n== ingest: POST / -> webhook -> local sink (%d connections, %s per run, same run as the reference) ==\n", r.conns, r.dur)
	fmt.Printf("%-50s %10s %10s %8s %9s %11s\n", "target", "events/s", "p99", "vs bare", "peak RSS", "CPU/event")
	fmt.Printf("%-50s %10.0f %10s %8s %9s %11s\n", "bare net/http (reference)", base.rps, base.p99, "1.00", "-", "-")
	for i, m := range modes {
		res := results[i]
		fmt.Printf("%-50s %10.0f %10s %8.2f %9s %11s\n", "saker, "+m.name+", accepted", res.got.rps, res.got.p99, res.got.rps/base.rps, "-", "-")
		fmt.Printf("%-50s %10.0f %10s %8.2f %6d MB %8.1f us\n", "saker, "+m.name+", end to end (delivered)", res.e2eRate, "-",
			res.e2eRate/base.rps, res.rss, res.cpuPerEvUs)
	}
	for i, m := range modes {
		res := results[i]
		fmt.Printf("%s: accepted %d, rejected %d, delivered %d (floor: %s)\n", m.name, res.got.ok, res.got.non2xx, res.delivered, m.floor)
	}
}

// sakerIngest loads saker in mode m with the webhook output to a counting sink, and waits
// until the sink got every accepted event (or two minutes).
func (r *runner) sakerIngest(m busMode) ingestResult {
	sinkPort := freePort()
	sink := start(r.self, nil, "-role", "sink", "-addr", hostPort(sinkPort))
	defer stop(sink)
	waitPort(sinkPort)
	sakerPort := freePort()
	s := start(r.saker, append([]string{"LISTENADDRESS=127.0.0.1", "LISTENPORT=" + strconv.Itoa(sakerPort),
		fmt.Sprintf("WEBHOOK_ADDRESS=http://127.0.0.1:%d/", sinkPort)}, m.env...), m.args...)
	waitPort(sakerPort)
	peak := watchRSS(s.Process.Pid)
	cpu0, extra0 := cpuTicks(s.Process.Pid), 0
	if m.extra != nil {
		extra0 = m.extra()
	}
	t0 := time.Now()
	got := r.run(fmt.Sprintf("http://127.0.0.1:%d/", sakerPort))
	deadline := time.Now().Add(2 * time.Minute)
	delivered := 0
	for time.Now().Before(deadline) {
		delivered = sinkCount(sinkPort)
		if delivered >= got.ok {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	e2e := time.Since(t0)
	ticks := cpuTicks(s.Process.Pid) - cpu0
	if m.extra != nil {
		ticks += m.extra() - extra0
	}
	res := ingestResult{got: got, delivered: delivered, rss: peak(),
		e2eRate: float64(min(delivered, got.ok)) / e2e.Seconds()}
	if delivered > 0 {
		res.cpuPerEvUs = float64(ticks) * 1e6 / clockTicks / float64(delivered)
	}
	stop(s)
	return res
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat's CPU times (100 on Linux).
const clockTicks = 100

// cpuTicks is the user and system CPU time the process used so far, in clock ticks.
func cpuTicks(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count the fields after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.Atoi(f[11]) // field 14, utime
	s, _ := strconv.Atoi(f[12]) // field 15, stime
	return u + s
}

// natsServer finds the nats-server binary (.ci/install-peers.sh), or "".
func natsServer() string {
	dir := os.Getenv("SAKER_PEERS")
	if dir == "" {
		dir = "/tmp/saker-peers"
	}
	if p := filepath.Join(dir, "nats-server"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func (r *runner) memory(n int) {
	sinkPort := freePort()
	sink := start(r.self, nil, "-role", "hang", "-addr", hostPort(sinkPort))
	waitPort(sinkPort)
	sakerPort := freePort()
	s := start(r.saker, []string{"LISTENADDRESS=127.0.0.1", "LISTENPORT=" + strconv.Itoa(sakerPort),
		fmt.Sprintf("WEBHOOK_ADDRESS=http://127.0.0.1:%d/", sinkPort)})
	waitPort(sakerPort)
	peak := watchRSS(s.Process.Pid)
	ok, non2xx := postN(fmt.Sprintf("http://127.0.0.1:%d/", sakerPort), r.body, n, r.conns, 2*time.Minute)
	rss := peak()
	stop(s)
	stop(sink)
	fmt.Printf("\n== memory: up to %d events posted for at most 2 minutes, output hung ==\n", n)
	fmt.Printf("accepted %d, refused with 503 %d, peak RSS %d MB (floor: < 150 MB; falcosidekick reaches ~1.3 GB here)\n", ok, non2xx, rss)
}

// run loads url for r.dur with wrk, or the built-in generator when wrk is missing.
func (r *runner) run(url string) load {
	if _, err := exec.LookPath("wrk"); err == nil {
		return r.wrk(url)
	}
	return r.builtin(url)
}

var (
	reTotal  = regexp.MustCompile(`(\d+) requests in`)
	reNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reRPS    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reP99    = regexp.MustCompile(`99%\s+([\d.]+)(us|ms|s)`)
)

func (r *runner) wrk(url string) load {
	dir, err := os.MkdirTemp("", "loadbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ev := filepath.Join(dir, "event.json")
	if err := os.WriteFile(ev, r.body, 0o600); err != nil {
		log.Fatal(err)
	}
	script := filepath.Join(dir, "post.lua")
	lua := fmt.Sprintf(`local f=io.open(%q,"r") wrk.method="POST" wrk.body=f:read("*a") f:close() wrk.headers["Content-Type"]="application/json"`, ev)
	if err := os.WriteFile(script, []byte(lua), 0o600); err != nil {
		log.Fatal(err)
	}
	out, err := exec.Command("wrk", "-t2", "-c"+strconv.Itoa(r.conns), "-d"+r.dur.String(), "--latency", "-s", script, url).Output()
	if err != nil {
		log.Fatalf("wrk: %v", err)
	}
	s := string(out)
	total := atoiMatch(reTotal, s)
	non := atoiMatch(reNon2xx, s)
	rps, _ := strconv.ParseFloat(match(reRPS, s, 1), 64)
	l := load{ok: total - non, non2xx: non, rps: rps * float64(total-non) / float64(max(total, 1))}
	if m := reP99.FindStringSubmatch(s); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
		l.p99 = time.Duration(v * float64(unit))
	}
	return l
}

func (r *runner) builtin(url string) load {
	var ok, non atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: r.conns}, Timeout: 15 * time.Second}
	deadline := time.Now().Add(r.dur)
	var wg sync.WaitGroup
	for i := 0; i < r.conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for time.Now().Before(deadline) {
				t := time.Now()
				if post(client, url, r.body) {
					ok.Add(1)
				} else {
					non.Add(1)
				}
				local = append(local, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	l := load{ok: int(ok.Load()), non2xx: int(non.Load()), rps: float64(ok.Load()) / r.dur.Seconds()}
	if len(lat) > 0 {
		l.p99 = lat[len(lat)*99/100]
	}
	return l
}

// postN posts body n times over conns connections, stopping early after limit.
func postN(url string, body []byte, n, conns int, limit time.Duration) (ok, non int) {
	deadline := time.Now().Add(limit)
	var okc, nonc atomic.Int64
	next := atomic.Int64{}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}, Timeout: 15 * time.Second}
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && time.Now().Before(deadline) {
				if post(client, url, body) {
					okc.Add(1)
				} else {
					nonc.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(okc.Load()), int(nonc.Load())
}

func post(c *http.Client, url string, body []byte) bool {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

func serveBare(addr string) {
	log.Fatal(http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})))
}

func serveSink(addr string, hang bool) {
	var n atomic.Int64
	block := make(chan struct{})
	log.Fatal(http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/count" {
			_ = json.NewEncoder(w).Encode(map[string]int64{"received": n.Load()})
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		if hang {
			<-block
		}
		n.Add(1)
	})))
}

func sinkCount(port int) int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/count", port))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var v struct{ Received int }
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return v.Received
}

// watchRSS samples the process's resident memory every 100ms; the returned function stops
// sampling and reports the peak in MB.
func watchRSS(pid int) func() int {
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if kb := rssKB(pid); kb > peak.Load() {
				peak.Store(kb)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int {
		if kb := rssKB(pid); kb > peak.Load() {
			peak.Store(kb)
		}
		close(done)
		return int(peak.Load() / 1024)
	}
}

func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return 0
}

func start(bin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = io.Discard
	cmd.Stdout = io.Discard
	// Each process in its own session, as the acceptance checks start them: with the
	// kernel's autogroup scheduling, saker, the sink and the load generator then share the
	// CPU as three groups, the conditions the floors are measured under.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		log.Fatalf("start %s: %v", bin, err)
	}
	return cmd
}

func stop(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func hostPort(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }

func waitPort(p int) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", hostPort(p)); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatalf("nothing listens on port %d", p)
}

func match(re *regexp.Regexp, s string, i int) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[i]
	}
	return "0"
}

func atoiMatch(re *regexp.Regexp, s string) int {
	v, _ := strconv.Atoi(match(re, s, 1))
	return v
}
