//go:build linux

package health

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

// cueDaemon is a real process that listens when told to and counts the
// connections it accepts (listenOnCue).
type cueDaemon struct {
	t   *testing.T
	pid int
	in  *os.File
	out *bufio.Reader
}

func startCueDaemon(t *testing.T) *cueDaemon {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OXIOS_HEALTH_HELPER=listen-on-cue")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = pr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	t.Cleanup(func() { pw.Close(); cmd.Wait() })
	return &cueDaemon{t: t, pid: cmd.Process.Pid, in: pw, out: bufio.NewReader(out)}
}

func (d *cueDaemon) say(line string) string {
	d.t.Helper()
	if _, err := d.in.WriteString(line + "\n"); err != nil {
		d.t.Fatal(err)
	}
	reply, err := d.out.ReadString('\n')
	if err != nil {
		d.t.Fatalf("daemon: %v", err)
	}
	return strings.TrimSpace(reply)
}

// requireSockDiag opens sock_diag, the gate's source; a kernel without it
// skips the test, except under CI, whose machines have it.
func requireSockDiag(t *testing.T) *sockDiag {
	t.Helper()
	d, err := newSockDiag()
	if err == nil {
		return d
	}
	if testenv.InCI() {
		t.Fatalf("no sock_diag: %v", err)
	}
	t.Skipf("no sock_diag: %v", err)
	return nil
}

// queued is the accept queue of the listener on 127.0.0.1:port: a connect
// that completed and was not accepted shows there, exactly.
func queued(t *testing.T, port int) uint32 {
	t.Helper()
	d := requireSockDiag(t)
	defer d.Close()
	l, ok, err := d.lookup(loop4, uint16(port))
	if err != nil || !ok {
		t.Fatalf("no listener on port %d: %v", port, err)
	}
	return l.queued
}

// Before its first success a local tcp:// or http:// probe connects to
// nobody: not while the port does not listen, not to a listener outside
// the supervised tree (whose accept queue stays empty), and only once the
// daemon itself listens; the daemon then sees exactly one connection.
func TestGatedNoConnectBeforeListen(t *testing.T) {
	requireSockDiag(t).Close()
	for _, kind := range []string{"tcp", "http"} {
		t.Run(kind, func(t *testing.T) {
			d := startCueDaemon(t)
			foreign, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := foreign.Addr().(*net.TCPAddr).Port
			spec := "tcp://127.0.0.1:" + strconv.Itoa(port)
			if kind == "http" {
				spec = "http://127.0.0.1:" + strconv.Itoa(port) + "/"
			}
			p := mustProber(t, spec)
			g, ok := p.(*gatedProber)
			if !ok {
				t.Fatalf("%s: %T, want a gated prober", spec, p)
			}
			g.SetRoot(d.pid)
			for i := 0; i < 5; i++ {
				if r := probeOnce(t, g, time.Second); r.Status != Failure || !strings.Contains(r.Detail, "outside the supervised tree") {
					t.Fatalf("foreign listener: %v %q, want a failure naming the foreign owner", r.Status, r.Detail)
				}
			}
			if n := queued(t, port); n != 0 {
				t.Fatalf("the foreign listener has %d connections queued: the gated probe connected", n)
			}
			foreign.Close()
			if r := probeOnce(t, g, time.Second); r.Status != Failure || !strings.Contains(r.Detail, "no LISTEN socket") {
				t.Fatalf("nothing listening: %v %q", r.Status, r.Detail)
			}
			if got := d.say(strconv.Itoa(port)); got != "listening" {
				t.Fatalf("daemon: %q", got)
			}
			r := probeOnce(t, g, time.Second)
			if kind == "tcp" && r.Status != Success {
				t.Fatalf("daemon listening: %v %q", r.Status, r.Detail)
			}
			if kind == "http" && (r.Status != Failure || !strings.Contains(r.Detail, "GET")) {
				// The cue daemon closes at once: the GET reached it and failed.
				t.Fatalf("daemon listening: %v %q, want a failed GET", r.Status, r.Detail)
			}
			if n := d.say("count"); n != "1" {
				t.Fatalf("the daemon accepted %s connections, want 1 (the probe after it listened)", n)
			}
		})
	}
}

// A probe of another host's address is not gated (sock_diag cannot see
// its sockets) and keeps the connecting schedule; local addresses are.
func TestGatedOnlyLocalAddresses(t *testing.T) {
	for _, spec := range []string{"tcp://192.0.2.1:80", "http://192.0.2.1/", "http://example.invalid:4200/x", "tcp://[2001:db8::1]:80"} {
		p := mustProber(t, spec)
		if _, ok := p.(*gatedProber); ok {
			t.Errorf("%s is gated: a remote address must keep its schedule", spec)
		}
		if _, ok := p.(pacer); ok {
			t.Errorf("%s paces itself", spec)
		}
		if q, ok := p.(quickRetrier); !ok {
			t.Errorf("%s: no quick retry", spec)
		} else if h, _ := q.quickRetry(); h != earlyWindow {
			t.Errorf("%s: hold %v, want %v (the old schedule)", spec, h, earlyWindow)
		}
		r := newRunner(kindReadiness, DefaultConfig().Readiness, p)
		if d, w := r.pace(3 * time.Millisecond); d != 3*time.Millisecond || w != nil {
			t.Errorf("%s: runner waits %v, want the schedule's 3ms", spec, d)
		}
	}
	local := []string{"tcp://127.0.0.1:80", "tcp://[::1]:80", "http://localhost:4200/", "tcp://0.0.0.0:80", "http://127.0.0.2:8080/"}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				local = append(local, "tcp://"+n.IP.String()+":80")
				break
			}
		}
	}
	for _, spec := range local {
		if _, ok := mustProber(t, spec).(*gatedProber); !ok {
			t.Errorf("%s is not gated", spec)
		}
	}
}

// The gated schedule: lookups every earlyRetry in the child's first
// earlyWindow, then every gatedPollCap, every slowPoll after slowAfter
// while the port does not listen, these two paced by the ticker; then
// earlyRetry once it does, and listeningRetry after earlyWindow.
func TestGatedPace(t *testing.T) {
	d := startCueDaemon(t)
	port := testenv.FreePort(t)
	g := mustProber(t, "tcp://127.0.0.1:"+strconv.Itoa(port)).(*gatedProber)
	g.SetRoot(d.pid)
	if r := probeOnce(t, g, time.Second); r.Status != Failure {
		t.Fatalf("nothing listening: %v %q", r.Status, r.Detail)
	}
	if w, c := g.pace(); w != earlyRetry || c != nil {
		t.Fatalf("a young child's gate waits %v (event %v), want %v", w, c, earlyRetry)
	}
	g.born = time.Now().Add(-earlyWindow)
	probeOnce(t, g, time.Second)
	if g.interval() != gatedPollCap {
		t.Fatalf("wait while not listening past earlyWindow: %v, want %v", g.interval(), gatedPollCap)
	}
	if w, c := g.pace(); w != tickPaced || c == nil {
		t.Fatalf("a wait of %v is not paced by the ticker: %v %v", gatedPollCap, w, c)
	}
	<-g.gate.tick.C                     // it ticks
	g.born = time.Now().Add(-slowAfter) // a slow starter: slowPoll
	probeOnce(t, g, time.Second)
	if g.interval() != slowPoll {
		t.Fatalf("wait for a child older than %v: %v, want %v", slowAfter, g.interval(), slowPoll)
	}
	d.say(strconv.Itoa(port))
	if r := probeOnce(t, g, time.Second); r.Status != Success {
		t.Fatalf("%v %q", r.Status, r.Detail)
	}
	if w, _ := g.pace(); w != earlyRetry {
		t.Fatalf("wait once listening %v, want %v", w, earlyRetry)
	}
	g.openAt = time.Now().Add(-earlyWindow)
	if g.interval() != listeningRetry {
		t.Fatalf("wait once listening for 50 ms %v, want %v", g.interval(), listeningRetry)
	}
	if w, c := g.pace(); w != tickPaced || c == nil {
		t.Fatalf("a wait of %v is not paced by the ticker: %v %v", listeningRetry, w, c)
	}

	g.SetRoot(d.pid)
	if w, _ := g.pace(); w != earlyRetry {
		t.Fatalf("a new child is not gated again: wait %v", w)
	}
	if r := probeOnce(t, g, time.Second); r.Status != Success || len(g.gate.matched) == 0 {
		t.Fatalf("a new child is not gated again: %v %q", r.Status, r.Detail)
	}
}

// listenOnCue is a daemon that listens only when told: it reads a port
// from stdin, listens on 127.0.0.1:PORT and prints "listening"; for every
// further line it accepts what the kernel has queued (a completed connect
// waits there: nothing is missed or counted early) and prints the total.
func init() { listenOnCue = listenOnCueLinux }

func listenOnCueLinux() int {
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strings.TrimSpace(in.Text()))
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	fmt.Println("listening")
	accepted := 0
	for in.Scan() {
		rc, _ := ln.(*net.TCPListener).SyscallConn()
		rc.Control(func(fd uintptr) {
			for { // the socket is non-blocking: EAGAIN when the queue is empty
				c, _, err := unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
				if err != nil {
					return
				}
				accepted++
				unix.Close(c)
			}
		})
		fmt.Println(accepted)
	}
	return 0
}

// listen:// keeps its doubling schedule for a young child, then polls
// every listenPollCap, and every slowPoll once the child has not listened
// for slowAfter, paced by its ticker.
func TestListenSlowPoll(t *testing.T) {
	p := mustProber(t, "listen://127.0.0.1:"+strconv.Itoa(testenv.FreePort(t))).(*listenProber)
	p.SetRoot(os.Getpid())
	if d, c := p.pace(); d != 0 || c != nil {
		t.Fatalf("young child: pace %v, want the schedule", d)
	}
	for _, age := range []time.Duration{earlyWindow, slowAfter} {
		p.born.Store(time.Now().Add(-age).UnixNano())
		if d, c := p.pace(); d != tickPaced || c == nil {
			t.Fatalf("child of %v: pace %v %v, want the ticker", age, d, c)
		}
		if want := waitListen(age); p.tick.every != want {
			t.Fatalf("child of %v: ticks every %v, want %v", age, p.tick.every, want)
		}
	}
}

// The ticker ticks every armed interval; a tick nobody took disarms it
// (the poll it paced has ended), and arm starts it again.
func TestPollTickerDisarmsUntaken(t *testing.T) {
	tk := newPollTicker()
	if tk == nil {
		t.Fatal("no timerfd")
	}
	defer tk.Close()
	tk.arm(time.Millisecond)
	t0 := time.Now()
	for i := 0; i < 3; i++ {
		<-tk.C
	}
	if el := time.Since(t0); el < 2*time.Millisecond {
		t.Fatalf("3 ticks of 1 ms in %v", el)
	}
	testenv.WaitFor(t, "an untaken tick to disarm the ticker", 5*time.Second, func() bool { return !tk.armed.Load() })
	<-tk.C // the tick that filled C
	tk.arm(time.Millisecond)
	<-tk.C
	tk.Close()
	tk.arm(time.Millisecond) // after Close: nothing, and no panic
}
