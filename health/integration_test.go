//go:build linux

package health

// Integration: bin/oxios-init supervising bin/oxios-demo, probes driven by
// the demo's fault knobs. Events come from oxios-init's JSON log on stderr
// (read as it is written) and from the health endpoint, never from sleeps.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
	"github.com/a7garden/oxios/runtime/contract"
)

type logEntry struct {
	at     time.Time // when the test read it
	msg    string
	fields map[string]any
}

type initProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	health string // HOST:PORT of the health endpoint
	demo   string // HOST:PORT of the demo

	mu      sync.Mutex
	entries []logEntry
	cond    *sync.Cond
	done    bool
}

// startInit runs bin/oxios-init with the health endpoint and the demo on
// free ports; extra holds more oxios-init options, env the demo's knobs.
func startInit(t *testing.T, extra []string, env ...string) *initProc {
	t.Helper()
	initBin := testenv.Bin(t, "oxios-init")
	demoBin := testenv.Bin(t, "oxios-demo")
	p := &initProc{t: t, health: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)), demo: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))}
	p.cond = sync.NewCond(&p.mu)
	// -p SIGTERM: if this test binary dies, oxios-init stops the demo and exits.
	args := append([]string{"-s", "-p", "SIGTERM", "-v", "-v", "--log-format", "json", "--health-listen", p.health}, extra...)
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "DEMO", p.demo)
	}
	args = append(args, "--", demoBin)
	p.cmd = exec.Command(initBin, args...)
	p.cmd.Env = append(os.Environ(), append([]string{"OXIOS_DEMO_LISTEN=" + p.demo, "NOTIFY_SOCKET="}, env...)...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.readLog(stderr)
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-done
			p.killChildren() // oxios-init could not stop them
		}
		if t.Failed() {
			p.mu.Lock()
			for _, e := range p.entries {
				t.Logf("oxios-init: %s %v", e.msg, e.fields)
			}
			p.mu.Unlock()
		}
	})
	return p
}

// killChildren SIGKILLs every daemon oxios-init said it started that is
// still alive (only after oxios-init itself had to be killed).
func (p *initProc) killChildren() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.entries {
		var pid int
		if _, err := fmt.Sscanf(e.msg[strings.LastIndex(e.msg, " as pid ")+1:], "as pid %d", &pid); err == nil && pid > 1 && testenv.Alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (p *initProc) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		e := logEntry{at: time.Now(), fields: map[string]any{}}
		if json.Unmarshal(sc.Bytes(), &e.fields) != nil {
			e.msg = sc.Text()
		} else {
			e.msg, _ = e.fields["msg"].(string)
		}
		p.mu.Lock()
		p.entries = append(p.entries, e)
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.done = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// waitLog waits for the first entry after index from whose message
// contains msg and whose fields match want; it returns the entry's index.
func (p *initProc) waitLog(from int, msg string, want map[string]any, within time.Duration) (int, logEntry) {
	p.t.Helper()
	i, e, ok := p.findLog(from, msg, want, within)
	if !ok {
		// Fatalf only here, with no lock held: Goexit runs the cleanup
		// that stops oxios-init.
		p.t.Fatalf("no log %q %v within %v", msg, want, within)
	}
	return i, e
}

func (p *initProc) findLog(from int, msg string, want map[string]any, within time.Duration) (int, logEntry, bool) {
	timer := time.AfterFunc(within, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(within)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := from; ; i++ {
		for i >= len(p.entries) {
			if p.done || time.Now().After(deadline) {
				return 0, logEntry{}, false
			}
			p.cond.Wait()
		}
		e := p.entries[i]
		if !matchMsg(e.msg, msg) {
			continue
		}
		ok := true
		for k, v := range want {
			ok = ok && e.fields[k] == v
		}
		if ok {
			return i + 1, e, true
		}
	}
}

// matchMsg: "^prefix" matches at the start, anything else anywhere.
func matchMsg(got, want string) bool {
	if p, ok := strings.CutPrefix(want, "^"); ok {
		return strings.HasPrefix(got, p)
	}
	return strings.Contains(got, want)
}

// supervisorRestart is the supervisor's log line for a health restart.
const supervisorRestart = "^restarting "

func (p *initProc) noLog(msg string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.entries {
		if matchMsg(e.msg, msg) {
			return false
		}
	}
	return true
}

func (p *initProc) post(path string) time.Time {
	p.t.Helper()
	resp, err := http.Post("http://"+p.demo+path, "text/plain", nil)
	if err != nil {
		p.t.Fatalf("POST %s: %v", path, err)
	}
	resp.Body.Close()
	return time.Now()
}

func (p *initProc) status() contract.Report {
	p.t.Helper()
	resp, err := http.Get("http://" + p.health + "/status")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r contract.Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		p.t.Fatal(err)
	}
	return r
}

var readyTrue = map[string]any{"ready": true}
var readyFalse = map[string]any{"ready": false}

// A daemon that stops answering is restarted by liveness within
// failureThreshold x period (+ one timeout) for the decision and + grace
// for the stop, even when it ignores SIGTERM.
func TestIntegrationLivenessRestartsHungDaemon(t *testing.T) {
	const period, timeout, threshold, grace = 300 * time.Millisecond, 200 * time.Millisecond, 3, 700 * time.Millisecond
	p := startInit(t, []string{
		"--restart", "always", "--backoff-initial", "10ms", "--grace", grace.String(),
		"--liveness", "http://DEMO/health", "--liveness-period", period.String(),
		"--liveness-timeout", timeout.String(), "--liveness-failure-threshold", strconv.Itoa(threshold),
		"--readiness", "listen://DEMO",
	}, "OXIOS_DEMO_SIGTERM=ignore")
	next, _ := p.waitLog(0, "readiness changed", readyTrue, 20*time.Second)
	hungAt := p.post("/debug/hang")
	next, decided := p.waitLog(next, supervisorRestart, nil, 10*time.Second)
	if !strings.Contains(decided.msg, "liveness") {
		t.Errorf("restart reason %q does not name liveness", decided.msg)
	}
	budget := threshold*period + timeout + time.Second // scheduling slack on a loaded CI machine
	t.Logf("hang -> restart decided %v, budget %v", decided.at.Sub(hungAt), budget)
	if d := decided.at.Sub(hungAt); d > budget {
		t.Errorf("liveness decided after %v, want <= %v", d, budget)
	}
	next, exited := p.waitLog(next, "exited", nil, 10*time.Second)
	if d := exited.at.Sub(hungAt); d > budget+grace+time.Second {
		t.Errorf("hung daemon gone after %v, want <= failureThreshold x period + grace (%v, + 1s slack for the stop)", d, budget+grace)
	}
	t.Logf("hang -> hung daemon gone %v, budget %v", exited.at.Sub(hungAt), budget+grace)
	// It ignored SIGTERM: the grace ran out and KILL ended it.
	if p.noLog("grace period") {
		t.Error("no grace-period KILL logged for a SIGTERM-ignoring daemon")
	}
	p.waitLog(next, "readiness changed", readyTrue, 20*time.Second)
	if st := p.status(); st.Child.Restarts != 1 || !st.Ready || !st.Live {
		t.Errorf("/status after the restart: %+v", st)
	}
}

// A slow starter is not killed while its startup budget lasts, and the
// startup probe keeps liveness (which would fail at once) from running.
func TestIntegrationSlowStarterNotKilled(t *testing.T) {
	const delay = 1500 * time.Millisecond
	p := startInit(t, []string{
		"--restart", "always",
		"--startup", "listen://DEMO", "--startup-period", "1s", "--startup-failure-threshold", "3", // 3 s budget
		"--liveness", "tcp://DEMO", "--liveness-period", "100ms", "--liveness-failure-threshold", "1",
		"--readiness", "http://DEMO/health/ready", "--readiness-period", "100ms",
	}, "OXIOS_DEMO_LISTEN_DELAY="+delay.String())
	start := time.Now()
	_, e := p.waitLog(0, "readiness changed", readyTrue, 20*time.Second)
	if e.at.Sub(start) < delay {
		t.Errorf("ready after %v, before the daemon listened (%v)", e.at.Sub(start), delay)
	}
	if !p.noLog(supervisorRestart) {
		t.Fatal("the slow starter was restarted within its startup budget")
	}
	st := p.status()
	if st.Child.Restarts != 0 || st.Probes["startup"].Result != "success" {
		t.Errorf("/status: %+v", st)
	}
	t.Logf("ready %v after start, listen delay %v", e.at.Sub(start), delay)
	// The accelerated startup probe saw the listener within milliseconds.
	if lag := e.at.Sub(start) - delay; lag > time.Second {
		t.Errorf("ready %v after the listen delay", lag)
	}
}

// A daemon that never listens is restarted when the startup budget
// (failureThreshold x period) is spent.
func TestIntegrationStartupBudgetExceeded(t *testing.T) {
	p := startInit(t, []string{
		"--restart", "always", "--backoff-initial", "10ms", "--grace", "200ms",
		"--startup", "listen://DEMO", "--startup-period", "300ms", "--startup-failure-threshold", "2",
	}, "OXIOS_DEMO_LISTEN_DELAY=30s")
	start := time.Now()
	_, e := p.waitLog(0, supervisorRestart, nil, 10*time.Second)
	if !strings.Contains(e.msg, "startup") {
		t.Errorf("restart reason %q does not name startup", e.msg)
	}
	if d := e.at.Sub(start); d < 600*time.Millisecond || d > 600*time.Millisecond+time.Second {
		t.Errorf("startup failure after %v, budget 600ms", d)
	}
}

// Readiness follows /health/ready both ways, without restarting, and is
// published through /readyz, the ready file and `oxios-init probe`.
func TestIntegrationReadinessFlips(t *testing.T) {
	readyFile := filepath.Join(t.TempDir(), "ready")
	p := startInit(t, []string{
		"--restart", "always", "--ready-file", readyFile,
		"--readiness", "http://DEMO/health/ready", "--readiness-period", "100ms", "--readiness-failure-threshold", "2",
		"--liveness", "http://DEMO/health", "--liveness-period", "100ms",
	})
	initBin := testenv.Bin(t, "oxios-init")
	probeCLI := func(kind string) int {
		cmd := exec.Command(initBin, "probe", kind)
		cmd.Env = append(os.Environ(), "OXIOS_INIT_HEALTH_LISTEN="+p.health)
		return testenv.ExitCode(t, cmd.Run())
	}
	exists := func() bool { _, err := os.Stat(readyFile); return err == nil }
	next, _ := p.waitLog(0, "readiness changed", readyTrue, 20*time.Second)
	if !exists() || probeCLI("readiness") != 0 || Query(p.health, "readiness", time.Second) != nil {
		t.Fatal("ready, but the ready file, `oxios-init probe readiness` or /readyz disagree")
	}
	p.post("/debug/unready")
	next, _ = p.waitLog(next, "readiness changed", readyFalse, 5*time.Second)
	if exists() || probeCLI("readiness") != 1 || Query(p.health, "readiness", time.Second) == nil {
		t.Fatal("not ready, but the ready file, `oxios-init probe readiness` or /readyz disagree")
	}
	if probeCLI("liveness") != 0 {
		t.Error("readiness failure made the daemon not live")
	}
	p.post("/debug/ready")
	p.waitLog(next, "readiness changed", readyTrue, 5*time.Second)
	if !exists() {
		t.Error("ready again, but no ready file")
	}
	if !p.noLog(supervisorRestart) {
		t.Error("a readiness failure restarted the daemon")
	}
}

// exec: probes are started by the supervisor and reaped by its one
// wait4(-1) loop: their exit status must reach the probe (a lost or
// misrouted status would read as Unknown or a wrong result, and a failing
// probe would never restart anything).
func TestIntegrationExecProbeUnderReaper(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "healthy")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startInit(t, []string{
		"--restart", "always", "--backoff-initial", "10ms", "--grace", "500ms",
		"--liveness", "exec:test -e " + flag, "--liveness-period", "100ms", "--liveness-failure-threshold", "2",
		"--readiness", "exec:true", "--readiness-period", "100ms",
	})
	next, _ := p.waitLog(0, "readiness changed", readyTrue, 20*time.Second)
	// Let a handful of liveness probes run: every one must be counted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := p.status()
		pr := st.Probes["liveness"]
		if pr.Result == "unknown" {
			t.Fatalf("exec liveness probe result unknown (exit status stolen?): %+v", pr)
		}
		if pr.Successes >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("liveness probes not succeeding: %+v", pr)
		}
		time.Sleep(50 * time.Millisecond) // polling /status: it has no event to wait on
	}
	os.Remove(flag)
	_, e := p.waitLog(next, supervisorRestart, nil, 10*time.Second)
	if !strings.Contains(e.msg, "liveness probe failed: exit 1") {
		t.Errorf("restart reason %q", e.msg)
	}
}

// The Makefile's oxios-init leaves TLS out (-tags oxios_nohttps): an
// https:// probe is refused at start, naming the option and the tag,
// before any child runs.
func TestIntegrationHTTPSRefusedAtStart(t *testing.T) {
	initBin := testenv.Bin(t, "oxios-init")
	marker := filepath.Join(t.TempDir(), "ran")
	cmd := exec.Command(initBin, "--readiness", "https://127.0.0.1:8443/health", "--", "touch", marker)
	out, err := cmd.CombinedOutput()
	if code := testenv.ExitCode(t, err); code != 1 {
		t.Fatalf("exit %d, want 1; output:\n%s", code, out)
	}
	if !strings.Contains(string(out), "--readiness") || !strings.Contains(string(out), "oxios_nohttps") {
		t.Errorf("the error does not name the option and the build tag:\n%s", out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the child ran although the probe config was refused")
	}
}
