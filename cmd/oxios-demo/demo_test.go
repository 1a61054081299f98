package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

func TestEndpoints(t *testing.T) {
	t.Parallel()
	p := startDemo(t, nil)
	base := "http://" + p.ready()

	code, body := get(t, base+"/health")
	if code != 200 {
		t.Fatalf("/health = %d", code)
	}
	var h struct {
		Status string `json:"status"`
		PID    int    `json:"pid"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.Status != "ok" || h.PID != p.cmd.Process.Pid {
		t.Fatalf("/health body %q: %+v %v", body, h, err)
	}
	if code, body := get(t, base+"/health/ready"); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("/health/ready = %d %q", code, body)
	}
	host, _ := os.Hostname()
	code, body = get(t, base+"/")
	for _, want := range []string{host, strconv.Itoa(p.cmd.Process.Pid), "uptime", "version"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/ = %d, missing %q:\n%s", code, want, body)
		}
	}
	if code, _ := get(t, base+"/nope"); code != 404 {
		t.Fatalf("/nope = %d, want 404", code)
	}
	code, body = get(t, base+"/metrics")
	for _, want := range []string{"oxios_demo_up 1", "oxios_demo_ready 1", `oxios_demo_http_requests_total{path="/health"} 1`, "# TYPE oxios_demo_uptime_seconds gauge"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics = %d, missing %q:\n%s", code, want, body)
		}
	}
	p.signal(syscall.SIGINT)
	if c := p.exitCode(); c != 0 {
		t.Fatalf("exit code after SIGINT = %d, want 0", c)
	}
}

func TestReadyDelayAndDebugToggles(t *testing.T) {
	t.Parallel()
	p := startDemo(t, []string{"OXIOS_DEMO_READY_DELAY=1h"})
	base := "http://" + p.addr()
	ready := func(want int) {
		t.Helper()
		if code, body := get(t, base+"/health/ready"); code != want {
			t.Fatalf("/health/ready = %d %q, want %d", code, body, want)
		}
	}
	ready(503)
	if code, _ := get(t, base+"/health"); code != 200 {
		t.Fatalf("/health = %d while not ready, want 200", code)
	}
	post(t, base+"/debug/ready")
	ready(200)
	post(t, base+"/debug/unready")
	ready(503)
	post(t, base+"/debug/ready")
	ready(200)
	if code, _ := get(t, base+"/debug/ready"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /debug/ready = %d, want 405", code)
	}
}

func TestReadyDelayElapses(t *testing.T) {
	t.Parallel()
	const delay = 300 * time.Millisecond
	p := startDemo(t, []string{"OXIOS_DEMO_READY_DELAY=" + delay.String()})
	listening, _ := p.waitLog(`msg=listening`)
	readyLine, _ := p.waitLog(`msg=ready `)
	// The times are when this test read each line; the demo's timer starts
	// just before it writes "listening", so the gap can fall short of the
	// delay by a scheduling hiccup. A delay ignored would show as ~0.
	if got := readyLine.at.Sub(listening.at); got < delay*9/10 {
		t.Fatalf("ready %v after listening, want about %v", got, delay)
	}
	if code, _ := get(t, "http://"+p.addr()+"/health/ready"); code != 200 {
		t.Fatalf("/health/ready = %d after the delay", code)
	}
}

func TestUnreadyAfter(t *testing.T) {
	t.Parallel()
	p := startDemo(t, []string{"OXIOS_DEMO_UNREADY_AFTER=200ms"})
	base := "http://" + p.ready()
	p.waitLog(`msg=unready`)
	if code, _ := get(t, base+"/health/ready"); code != 503 {
		t.Fatalf("/health/ready = %d after UNREADY_AFTER, want 503", code)
	}
	if code, _ := get(t, base+"/health"); code != 200 {
		t.Fatalf("/health = %d while unready, want 200 (alive)", code)
	}
}

func TestListenDelay(t *testing.T) {
	t.Parallel()
	const delay = 1500 * time.Millisecond
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := startDemo(t, []string{"OXIOS_DEMO_LISTEN_DELAY=" + delay.String()}, "--listen", addr)
	p.waitLog(`waiting before listening`)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("%s accepted a connection during OXIOS_DEMO_LISTEN_DELAY", addr)
	}
	l, _ := p.waitLog(`msg=listening`)
	if got := l.at.Sub(p.start); got < delay {
		t.Fatalf("listening %v after start, want >= %v", got, delay)
	}
	if code, _ := get(t, "http://"+addr+"/health"); code != 200 {
		t.Fatalf("/health = %d", code)
	}
}

func TestExitAfter(t *testing.T) {
	t.Parallel()
	p := startDemo(t, []string{"OXIOS_DEMO_EXIT_AFTER=200ms", "OXIOS_DEMO_EXIT_CODE=7"})
	if c := p.exitCode(); c != 7 {
		t.Fatalf("exit code = %d, want 7", c)
	}
	if got := p.exitAt.Sub(p.start); got < 200*time.Millisecond {
		t.Fatalf("exited after %v, want >= 200ms", got)
	}
}

// Like the real daemon without a model: exit 0 without ever listening.
func TestExitBeforeListening(t *testing.T) {
	t.Parallel()
	p := startDemo(t, []string{"OXIOS_DEMO_EXIT_AFTER=0s", "OXIOS_DEMO_LISTEN_DELAY=1h"})
	if c := p.exitCode(); c != 0 {
		t.Fatalf("exit code = %d, want 0", c)
	}
	if p.hasLog(`msg=listening`) {
		t.Fatal("demo listened although EXIT_AFTER came first")
	}
}

// A crash at start (EXIT_AFTER=0s, no listen delay) never listens first:
// both timers are due at the first select, and the exit wins every time.
func TestExitAtStartNeverListens(t *testing.T) {
	t.Parallel()
	for i := 0; i < 10; i++ {
		p := startDemo(t, []string{"OXIOS_DEMO_EXIT_AFTER=0s", "OXIOS_DEMO_EXIT_CODE=3"})
		if c := p.exitCode(); c != 3 {
			t.Fatalf("start %d: exit code = %d, want 3", i, c)
		}
		if p.hasLog(`msg=listening`) {
			t.Fatalf("start %d: demo listened although EXIT_AFTER=0s", i)
		}
	}
}

// slowRequest starts GET /debug/sleep?d=D and returns once the response
// headers arrived, i.e. once the request is surely in flight.
func slowRequest(t *testing.T, base string, d time.Duration) *http.Response {
	t.Helper()
	resp, err := client.Get(base + "/debug/sleep?d=" + d.String())
	if err != nil {
		t.Fatalf("slow request: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func testDrain(t *testing.T, env []string, sig syscall.Signal) {
	p := startDemo(t, env)
	addr := p.ready()
	resp := slowRequest(t, "http://"+addr, 700*time.Millisecond)
	p.signal(sig)
	p.waitLog(`msg="draining`)
	// The listener is closed at once: nothing new gets in during a drain.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections while draining", addr)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(body), "slept 700ms") {
		t.Fatalf("in-flight request during drain: body %q, err %v", body, err)
	}
	bodyDone := time.Now()
	if c := p.exitCode(); c != 0 {
		t.Fatalf("exit code after drain = %d, want 0", c)
	}
	if p.exitAt.Before(bodyDone.Add(-50 * time.Millisecond)) {
		t.Fatal("demo exited before the in-flight request finished")
	}
}

func TestSIGINTDrainsInFlightRequest(t *testing.T) {
	t.Parallel()
	testDrain(t, nil, syscall.SIGINT)
}

func TestSIGTERMDrain(t *testing.T) {
	t.Parallel()
	testDrain(t, []string{"OXIOS_DEMO_SIGTERM=drain"}, syscall.SIGTERM)
}

// The default, like the real daemon: SIGTERM kills at once, no drain.
func TestSIGTERMExitKillsWithoutDrain(t *testing.T) {
	t.Parallel()
	p := startDemo(t, nil)
	resp := slowRequest(t, "http://"+p.ready(), time.Hour)
	p.signal(syscall.SIGTERM)
	ws := p.wait()
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("wait status %v, want killed by SIGTERM", p.state)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("in-flight request completed although SIGTERM=exit must not drain")
	}
}

func TestSIGTERMIgnore(t *testing.T) {
	t.Parallel()
	p := startDemo(t, []string{"OXIOS_DEMO_SIGTERM=ignore"})
	base := "http://" + p.ready()
	p.signal(syscall.SIGTERM)
	p.waitLog(`ignoring SIGTERM`)
	if code, _ := get(t, base+"/health/ready"); code != 200 {
		t.Fatalf("/health/ready = %d after an ignored SIGTERM, want 200", code)
	}
	p.signal(syscall.SIGINT)
	if c := p.exitCode(); c != 0 {
		t.Fatalf("exit code = %d after SIGINT", c)
	}
}

// During STOP_DELAY the demo keeps serving but reports not ready, like a
// Kubernetes pod in its preStop phase.
func TestStopDelay(t *testing.T) {
	t.Parallel()
	const delay = 600 * time.Millisecond
	p := startDemo(t, []string{"OXIOS_DEMO_STOP_DELAY=" + delay.String()})
	base := "http://" + p.ready()
	sent := time.Now()
	p.signal(syscall.SIGINT)
	p.waitLog(`msg=stopping`)
	if code, _ := get(t, base+"/health/ready"); code != 503 {
		t.Fatalf("/health/ready = %d while stopping, want 503", code)
	}
	if code, _ := get(t, base+"/health"); code != 200 {
		t.Fatalf("/health = %d during the stop delay, want 200", code)
	}
	if c := p.exitCode(); c != 0 {
		t.Fatalf("exit code = %d", c)
	}
	if got := p.exitAt.Sub(sent); got < delay {
		t.Fatalf("exited %v after SIGINT, want >= %v", got, delay)
	}
}

func TestStopDelayWithSIGTERMExit(t *testing.T) {
	t.Parallel()
	const delay = 400 * time.Millisecond
	p := startDemo(t, []string{"OXIOS_DEMO_STOP_DELAY=" + delay.String()})
	p.ready()
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	ws := p.wait()
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("wait status %v, want killed by SIGTERM", p.state)
	}
	if got := p.exitAt.Sub(sent); got < delay {
		t.Fatalf("died %v after SIGTERM, want >= %v", got, delay)
	}
}

func TestHangKeepsSocketButStopsHTTP(t *testing.T) {
	t.Parallel()
	p := startDemo(t, []string{"OXIOS_DEMO_HANG_AFTER=100ms"})
	addr := p.ready()
	p.waitLog(`msg=hung`)
	assertHung(t, addr)
	// Signals still work: a supervisor can stop a hung daemon.
	p.signal(syscall.SIGINT)
	if c := p.exitCode(); c != 0 {
		t.Fatalf("exit code = %d", c)
	}
}

func TestDebugHangAlsoHangsKeepAliveConnections(t *testing.T) {
	t.Parallel()
	p := startDemo(t, nil)
	addr := p.ready()
	// One keep-alive connection, opened before the hang.
	ka := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	resp, err := ka.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = ka.Post("http://"+addr+"/debug/hang", "text/plain", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /debug/hang: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.waitLog(`msg=hung`)
	if _, err := ka.Get("http://" + addr + "/health"); !isTimeout(err) {
		t.Fatalf("GET on a keep-alive connection after /debug/hang: err %v, want a timeout", err)
	}
	assertHung(t, addr)
}

// assertHung: TCP connects succeed (the socket listens), HTTP never answers.
func assertHung(t *testing.T, addr string) {
	t.Helper()
	for i := 0; i < 3; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatalf("TCP connect to a hung demo: %v (the socket must stay open)", err)
		}
		c.Close()
	}
	short := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, path := range []string{"/health", "/health/ready", "/metrics"} {
		resp, err := short.Get("http://" + addr + path)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s answered %d on a hung demo", path, resp.StatusCode)
		}
		if !isTimeout(err) {
			t.Fatalf("GET %s: %v, want a timeout", path, err)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && errors.As(err, &ne) && ne.Timeout()
}

func TestDataDirHeartbeat(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data") // created by the demo
	p := startDemo(t, []string{"OXIOS_DEMO_DATA_DIR=" + dir})
	addr := p.ready()
	file := filepath.Join(dir, heartbeatName)
	read := func() heartbeatState {
		t.Helper()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var s heartbeatState
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s is not valid JSON (torn write?): %v\n%s", file, err, b)
		}
		return s
	}
	s := read()
	if s.PID != p.cmd.Process.Pid || s.State != "ready" || s.Listen != addr {
		t.Fatalf("heartbeat %+v, want pid %d state ready listen %s", s, p.cmd.Process.Pid, addr)
	}
	// The heartbeat moves on its own, once per heartbeatPeriod.
	deadline := time.Now().Add(3 * heartbeatPeriod)
	for read().Seq == s.Seq {
		if time.Now().After(deadline) {
			t.Fatalf("heartbeat did not advance within %v", 3*heartbeatPeriod)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.signal(syscall.SIGINT)
	p.exitCode()
	if got := read().State; got != "exited" {
		t.Fatalf("final state %q, want exited", got)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("data dir holds %d entries, want only %s (temporary files left behind?)", len(ents), heartbeatName)
	}
}

func TestDataDirUnwritable(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	p := startDemo(t, []string{"OXIOS_DEMO_DATA_DIR=" + f + "/sub"})
	if c := p.exitCode(); c != 1 {
		t.Fatalf("exit code = %d, want 1", c)
	}
	if !p.hasLog(envDataDir) {
		t.Fatalf("error does not name %s:\n%s", envDataDir, p.logText())
	}
}

func TestBadKnobsExit2NamingTheVariable(t *testing.T) {
	t.Parallel()
	for _, kv := range []string{
		"OXIOS_DEMO_READY_DELAY=soon",
		"OXIOS_DEMO_EXIT_CODE=300",
		"OXIOS_DEMO_SIGTERM=maybe",
		"OXIOS_DEMO_ORPHANS=-1",
		"OXIOS_DEMO_LISTEN=4200",
		"OXIOS_DEMO_HANG_AFTER=-1s",
	} {
		name, _, _ := strings.Cut(kv, "=")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := startDemo(t, []string{kv})
			if c := p.exitCode(); c != 2 {
				t.Fatalf("exit code = %d, want 2", c)
			}
			if !p.hasLog(name) {
				t.Fatalf("error does not name %s:\n%s", name, p.logText())
			}
		})
	}
}

func TestConfigFileGateway(t *testing.T) {
	t.Parallel()
	port := testenv.FreePort(t)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	// The real daemon's file has much more; the demo reads only [gateway].
	os.WriteFile(cfg, []byte(fmt.Sprintf("[model]\nprovider = \"none\"\n\n[gateway]\nhost = \"127.0.0.1\"\nport = %d\n", port)), 0o644)
	p := startDemo(t, nil, "--foreground", "--config", cfg)
	if got, want := p.addr(), fmt.Sprintf("127.0.0.1:%d", port); got != want {
		t.Fatalf("listening on %s, want %s from %s", got, want, cfg)
	}
}

func TestConfigFileSyntaxError(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(cfg, []byte("[gateway]\nport = = 1\n"), 0o644)
	p := startDemo(t, nil, "--foreground", "--config", cfg)
	if c := p.exitCode(); c != 2 {
		t.Fatalf("exit code = %d, want 2", c)
	}
	if !p.hasLog(cfg + `:2:`) {
		t.Fatalf("error does not name %s line 2:\n%s", cfg, p.logText())
	}
}

// A stop signal before the socket opens is handled, not lost: the handlers
// are installed first thing.
func TestStopDuringListenDelay(t *testing.T) {
	t.Parallel()
	p := startDemo(t, []string{"OXIOS_DEMO_LISTEN_DELAY=1h"})
	p.waitLog(`waiting before listening`)
	p.signal(syscall.SIGINT)
	if c := p.exitCode(); c != 0 {
		t.Fatalf("exit code = %d after SIGINT during the listen delay", c)
	}
	if p.hasLog(`msg=listening`) {
		t.Fatal("listened after the stop signal")
	}
}
