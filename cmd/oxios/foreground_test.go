//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

// notifySocket is a NOTIFY_SOCKET receiver like systemd's.
type notifySocket struct {
	path string
	conn *net.UnixConn
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	dir, _ := os.MkdirTemp("", "ntf")
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifySocket{path: p, conn: conn, msgs: make(chan string, 100)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	return n
}

// await returns the first message containing want (all messages seen
// on the way are returned too, for the log).
func (n *notifySocket) await(t *testing.T, want string, timeout time.Duration) []string {
	t.Helper()
	var seen []string
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed waiting for %q (seen %q)", want, seen)
			}
			seen = append(seen, m)
			if strings.Contains(m, want) {
				return seen
			}
		case <-deadline:
			t.Fatalf("no %q within %v (seen %q)", want, timeout, seen)
		}
	}
}

type fgProc struct {
	cmd    *exec.Cmd
	stdout *testenv.Buffer
	stderr *testenv.Buffer
	done   chan struct{}
}

func (c *cli) startForeground(t *testing.T, n *notifySocket, watchdog time.Duration) *fgProc {
	cmd := exec.Command(c.bin, "start", "--foreground", "--config", c.config)
	cmd.Env = append(os.Environ(), "CONTAINERD_ADDRESS=", "NOTIFY_SOCKET="+n.path)
	if watchdog > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds()), "WATCHDOG_PID=")
	}
	p := &fgProc{cmd: cmd, stdout: &testenv.Buffer{}, stderr: &testenv.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.done })
	return p
}

func (p *fgProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("foreground did not exit within %v\nstdout: %s\nstderr: %s", timeout, p.stdout, p.stderr)
		return -1
	}
}

// --foreground: READY=1 only once ready, WATCHDOG=1 while live, SIGTERM
// stops gracefully (STOPPING=1) and the exit code is the task's.
func TestForegroundNotifyAndSIGTERM(t *testing.T) {
	c := newCLI(t, "")
	n := newNotifySocket(t)
	p := c.startForeground(t, n, 400*time.Millisecond)
	seen := n.await(t, "READY=1", 30*time.Second)
	if httpStatus(c.url()+"/health/ready") != 200 {
		t.Fatalf("READY=1 before the daemon was ready (seen %q)", seen)
	}
	n.await(t, "WATCHDOG=1", 5*time.Second)
	if _, _, code := c.run("status"); code != 0 {
		t.Fatalf("status while attached: %d", code)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	n.await(t, "STOPPING=1", 10*time.Second)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d, want the task's 0\n%s", code, p.stderr)
	}
	if c.hasContainer() {
		t.Fatal("container left after the foreground stop")
	}
}

// The daemon's own exit code comes out of --foreground when it exits.
func TestForegroundExitCode(t *testing.T) {
	c := newCLI(t, "")
	text, _ := os.ReadFile(c.config)
	os.WriteFile(c.config, []byte(strings.Replace(string(text), `env = [`, `env = ["OXIOS_DEMO_EXIT_AFTER=1500ms", "OXIOS_DEMO_EXIT_CODE=5", `, 1)), 0o644)
	n := newNotifySocket(t)
	p := c.startForeground(t, n, 0)
	n.await(t, "READY=1", 30*time.Second)
	if code := p.wait(t, 30*time.Second); code != 5 {
		t.Fatalf("exit %d, want 5\n%s", code, p.stderr)
	}
}

// containerd killed and restarted while attached: --foreground keeps
// waiting (never takes the outage for an exit), then still stops on SIGTERM.
func TestForegroundSurvivesContainerdRestart(t *testing.T) {
	c := newCLI(t, "")
	n := newNotifySocket(t)
	p := c.startForeground(t, n, 0)
	n.await(t, "READY=1", 30*time.Second)
	c.ctrd.Kill9()
	select {
	case <-p.done:
		t.Fatalf("foreground exited when containerd died\n%s", p.stderr)
	case <-time.After(time.Second):
	}
	c.ctrd.Restart()
	if out, _, code := c.run("status"); code != 0 {
		t.Fatalf("status after the restart: %d %s", code, out)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr)
	}
	if c.hasContainer() {
		t.Fatal("container left")
	}
	// The outage was seen and waited out, not slept through unnoticed.
	if !strings.Contains(p.stderr.String(), "reconnecting") {
		t.Errorf("no \"reconnecting\" on stderr during the outage:\n%s", p.stderr)
	}
}

// Ten parallel `oxios start` processes: one task, ten clear results.
func TestCLIParallelStarts(t *testing.T) {
	c := newCLI(t, "")
	type result struct {
		out, errs string
		code      int
	}
	res := make([]result, 10)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, e, code := c.run("start")
			res[i] = result{o, e, code}
		}()
	}
	wg.Wait()
	started := 0
	for i, r := range res {
		if r.code != 0 {
			t.Fatalf("start %d: exit %d\n%s%s", i, r.code, r.out, r.errs)
		}
		if strings.HasPrefix(r.out, "oxios started") {
			started++
		} else if !strings.Contains(r.out, "already running") {
			t.Fatalf("start %d: unclear result %q", i, r.out)
		}
	}
	if started != 1 {
		t.Fatalf("%d runs started a task", started)
	}
}

// --foreground adopts a task an earlier `oxios start` left running.
func TestForegroundAdoptsRunningTask(t *testing.T) {
	c := newCLI(t, "")
	out, errs, code := c.run("start")
	if code != 0 {
		t.Fatalf("start: %s%s", out, errs)
	}
	n := newNotifySocket(t)
	p := c.startForeground(t, n, 0)
	n.await(t, "READY=1", 30*time.Second)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// Read stdout after the exit: the pipe copy is complete only then.
	pid := strings.TrimPrefix(strings.SplitN(out, ")", 2)[0], "oxios started (PID ")
	if !strings.Contains(p.stdout.String(), "already running (PID "+pid+")") {
		t.Fatalf("foreground did not adopt PID %s: %q", pid, p.stdout.String())
	}
}
