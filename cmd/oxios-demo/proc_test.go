package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// demoBin is the demo built once for this test binary. The tests build it
// themselves (not `make build`) so they depend on nothing but this package.
var demoBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oxios-demo-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	demoBin = filepath.Join(dir, "oxios-demo")
	build := exec.Command("go", "build", "-trimpath", "-o", demoBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build oxios-demo:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running demo with its log lines collected as they arrive.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	start   time.Time
	mu      sync.Mutex
	lines   []logLine
	changed chan struct{} // closed and replaced on every new line and at exit
	exited  chan struct{}
	state   *os.ProcessState
	exitAt  time.Time
}

type logLine struct {
	text string
	at   time.Time
}

// startDemo runs the demo with env added to a clean environment (no
// OXIOS_DEMO_* from the caller's shell) and --listen 127.0.0.1:0 unless the
// caller passes its own arguments.
func startDemo(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	if args == nil {
		args = []string{"--listen", "127.0.0.1:0"}
	}
	return startDemoWith(t, demoBin, env, args...)
}

// startDemoWith runs bin (the demo, or oxios-init around it) and collects
// its log lines.
func startDemoWith(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p := &proc{t: t, cmd: cmd, changed: make(chan struct{}), exited: make(chan struct{})}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	errW.Close()
	var readers sync.WaitGroup
	for _, r := range []io.ReadCloser{outR, errR} {
		readers.Add(1)
		go func(r io.ReadCloser) {
			defer readers.Done()
			defer r.Close()
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				p.add(sc.Text())
			}
		}(r)
	}
	go func() {
		cmd.Wait()
		readers.Wait()
		p.mu.Lock()
		p.state, p.exitAt = cmd.ProcessState, time.Now()
		close(p.exited)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("demo log:\n%s", p.logText())
		}
	})
	return p
}

func (p *proc) add(s string) {
	p.mu.Lock()
	p.lines = append(p.lines, logLine{s, time.Now()})
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

// waitLog waits for the first log line matching re and returns it with
// its submatches. It fails when the process exits or 10 s pass first.
func (p *proc) waitLog(re string) (logLine, []string) {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(10 * time.Second)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if m := rx.FindStringSubmatch(l.text); m != nil {
				p.mu.Unlock()
				return l, m
			}
		}
		ch := p.changed
		done := p.state != nil
		p.mu.Unlock()
		if done {
			p.t.Fatalf("demo exited (%v) before logging %q", p.state, re)
		}
		select {
		case <-ch:
		case <-deadline:
			p.t.Fatalf("no log line matching %q within 10s", re)
		}
	}
}

// hasLog reports whether a line matching re was logged so far.
func (p *proc) hasLog(re string) bool {
	rx := regexp.MustCompile(re)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if rx.MatchString(l.text) {
			return true
		}
	}
	return false
}

// addr waits until the demo listens and returns host:port.
func (p *proc) addr() string {
	p.t.Helper()
	_, m := p.waitLog(`msg=listening addr="([^"]+)"`)
	return m[1]
}

// ready waits until the demo reports ready and returns its address.
func (p *proc) ready() string {
	p.t.Helper()
	a := p.addr()
	p.waitLog(`msg=ready `)
	return a
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the exit (at most 10 s) and returns the wait status.
func (p *proc) wait() syscall.WaitStatus {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("demo did not exit within 10s")
	}
	return p.state.Sys().(syscall.WaitStatus)
}

// exitCode waits and returns the exit code, failing if a signal killed it.
func (p *proc) exitCode() int {
	p.t.Helper()
	ws := p.wait()
	if !ws.Exited() {
		p.t.Fatalf("demo did not exit normally: %v", p.state)
	}
	return ws.ExitStatus()
}

// client never reuses connections unless a test asks for it, so every
// request exercises accept.
var client = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, url string) int {
	t.Helper()
	resp, err := client.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
