package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// leanRuntime sets GOGC 25, unless the environment has its own, and
// the Ps of GOMAXPROCS when it is set.
func TestLeanRuntimeEnv(t *testing.T) {
	gc, procs := gcPercent(), runtime.GOMAXPROCS(0)
	t.Cleanup(func() { debug.SetGCPercent(gc); runtime.GOMAXPROCS(procs) })

	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(100)
	leanRuntime(func(k string) (string, bool) { return map[string]string{"GOGC": "100", "GOMAXPROCS": "2"}[k], true })
	if g, p := gcPercent(), runtime.GOMAXPROCS(0); g != 100 || p != 2 {
		t.Fatalf("with GOGC=100 GOMAXPROCS=2: GOGC %d, %d Ps; want 100, 2", g, p)
	}
	runtime.GOMAXPROCS(1)
	leanRuntime(func(string) (string, bool) { return "", false })
	if g, p := gcPercent(), runtime.GOMAXPROCS(0); g != leanGCPercent || p != 1 {
		t.Fatalf("unset: GOGC %d, %d Ps; want %d, 1", g, p, leanGCPercent)
	}
}

// gcLine is the runtime's gctrace line: its heap goal and Ps.
var gcLine = regexp.MustCompile(`^gc \d+ @.* (\d+) MB goal, .* (\d+) P`)

// firstGC runs bin/oxios-init with its health endpoint and
// GODEBUG=gctrace=1, asks /metrics until the runtime reports its first
// collection, and returns that collection's heap goal (MB) and Ps.
func firstGC(t *testing.T, env ...string) (goalMB, procs int) {
	t.Helper()
	dir := t.TempDir()
	sock, notify := filepath.Join(dir, "health.sock"), filepath.Join(dir, "notify.sock")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cmd := exec.Command(testenv.Bin(t, "oxios-init"), "--health-listen", "unix:"+sock, "--", "sleep", "100")
	cmd.Env = append(append(os.Environ(), "GODEBUG=gctrace=1", "NOTIFY_SOCKET="+notify), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	gcs := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := gcLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case gcs <- m:
				default:
				}
			}
		}
	}()
	// READY=1 comes once the child runs, after the endpoint listens.
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Read(make([]byte, 512)); err != nil {
		t.Fatalf("no READY=1 from oxios-init: %v", err)
	}
	// Each answer allocates a little; 20000 answers are far more than
	// the default heap minimum of 4 MiB.
	for i := 0; i < 20000; i++ {
		select {
		case m := <-gcs:
			goalMB, _ = strconv.Atoi(m[1])
			procs, _ = strconv.Atoi(m[2])
			return goalMB, procs
		default:
		}
		askMetrics(t, sock)
	}
	t.Fatal("no collection after 20000 requests")
	return 0, 0
}

func askMetrics(t *testing.T, sock string) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatal(err)
	}
}

// The real binary runs with one P and collects before its heap reaches
// the runtime's default 4 MiB; GOMAXPROCS and GOGC in its environment
// still win.
func TestLeanRuntime(t *testing.T) {
	goal, procs := firstGC(t)
	if procs != 1 || goal > 2 {
		t.Errorf("default: first collection with %d Ps and a %d MB goal; want 1 P, at most 2 MB", procs, goal)
	}
	goal, procs = firstGC(t, "GOMAXPROCS=2", "GOGC=100")
	if procs != 2 || goal < 4 {
		t.Errorf("GOMAXPROCS=2 GOGC=100: first collection with %d Ps and a %d MB goal; want 2 Ps, at least 4 MB", procs, goal)
	}
}
