//go:build linux

package health

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

var bg = context.Background()

func probeOnce(t *testing.T, p Prober, timeout time.Duration) Result {
	t.Helper()
	return p.Probe(bg, deadlineIn(timeout))
}

func mustProber(t *testing.T, spec string) Prober {
	t.Helper()
	s, err := ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProber(s)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := p.(interface{ Close() error }); ok {
		t.Cleanup(func() { c.Close() })
	}
	return p
}

// listenModes runs f with the listen prober forced into each mode, and
// fails if a prober fell back to another mode: the fallback would pass the
// test in the mode's name.
func listenModes(t *testing.T, f func(t *testing.T, mk func(spec string, root int) *listenProber)) {
	for _, mode := range []listenMode{modeSockDiag, modeProcNet, modeConnect} {
		t.Run(mode.String(), func(t *testing.T) {
			if mode == modeSockDiag {
				d, err := newSockDiag()
				if err != nil {
					t.Skipf("no sock_diag: %v", err)
				}
				d.Close()
			}
			var made []*listenProber
			f(t, func(spec string, root int) *listenProber {
				p := mustProber(t, spec).(*listenProber)
				p.mode = mode
				p.SetRoot(root)
				made = append(made, p)
				return p
			})
			for _, p := range made {
				if p.mode != mode {
					t.Errorf("listen://:%d fell back from %v to %v", p.port, mode, p.mode)
				}
			}
		})
	}
}

func TestListenNeverAccepting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // never Accept()ed
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	listenModes(t, func(t *testing.T, mk func(string, int) *listenProber) {
		if r := probeOnce(t, mk("listen://:"+port, os.Getpid()), time.Second); r.Status != Success {
			t.Fatalf("listen probe on a listener that never accepts: %+v", r)
		}
	})
	if r := probeOnce(t, mustProber(t, "tcp://127.0.0.1:"+port), time.Second); r.Status != Success {
		t.Fatalf("tcp probe on a listener that never accepts: %+v (the kernel completes the handshake)", r)
	}
}

// fullBacklogListener listens with backlog 0 and fills the accept queue
// with one connection: the kernel then drops further SYNs.
func fullBacklogListener(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	port := sa.(*unix.SockaddrInet4).Port
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return port
}

func TestListenFullBacklog(t *testing.T) {
	port := strconv.Itoa(fullBacklogListener(t))
	start := time.Now()
	r := probeOnce(t, mustProber(t, "tcp://127.0.0.1:"+port), 300*time.Millisecond)
	if r.Status != Failure {
		t.Fatalf("tcp probe against a full backlog: %+v, want failure (SYN dropped)", r)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("tcp probe took %v, beyond its 300ms timeout", el)
	}
	// sock_diag sees the queue; the fallbacks cannot (proc: no backlog) or
	// connect and time out like tcp://.
	p := mustProber(t, "listen://:"+port).(*listenProber)
	p.SetRoot(os.Getpid())
	if r := probeOnce(t, p, 300*time.Millisecond); r.Status != Failure || !strings.Contains(r.Detail, "queue full") {
		t.Fatalf("listen probe (sock_diag) against a full backlog: %+v", r)
	}
	p.mode = modeConnect
	if r := probeOnce(t, p, 300*time.Millisecond); r.Status != Failure {
		t.Fatalf("listen probe (connect) against a full backlog: %+v", r)
	}
}

func TestListenIPv4AndIPv6(t *testing.T) {
	ln4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln4.Close()
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln6.Close()
	p4 := strconv.Itoa(ln4.Addr().(*net.TCPAddr).Port)
	p6 := strconv.Itoa(ln6.Addr().(*net.TCPAddr).Port)
	me := os.Getpid()
	listenModes(t, func(t *testing.T, mk func(string, int) *listenProber) {
		for spec, want := range map[string]Status{
			"listen://:" + p4:          Success,
			"listen://127.0.0.1:" + p4: Success,
			"listen://:" + p6:          Success,
			"listen://[::1]:" + p6:     Success,
			"listen://[::1]:" + p4:     Failure, // only 127.0.0.1 listens on p4
			"listen://127.0.0.1:" + p6: Failure,
		} {
			p := mk(spec, me)
			if p.mode == modeConnect && strings.HasPrefix(spec, "listen://:") && spec == "listen://:"+p6 {
				continue // connect fallback dials 127.0.0.1 for "any"
			}
			if r := probeOnce(t, p, time.Second); r.Status != want {
				t.Errorf("%s: %+v, want %v", spec, r, want)
			}
		}
	})
	for spec, want := range map[string]Status{
		"tcp://127.0.0.1:" + p4: Success, "tcp://[::1]:" + p6: Success, "tcp://[::1]:" + p4: Failure,
	} {
		if r := probeOnce(t, mustProber(t, spec), time.Second); r.Status != want {
			t.Errorf("%s: %+v, want %v", spec, r, want)
		}
	}
}

func TestListenWildcard(t *testing.T) {
	ln, err := net.Listen("tcp", ":0") // [::] dual stack
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	listenModes(t, func(t *testing.T, mk func(string, int) *listenProber) {
		for _, spec := range []string{"listen://:" + port, "listen://127.0.0.1:" + port, "listen://0.0.0.0:" + port} {
			if r := probeOnce(t, mk(spec, os.Getpid()), time.Second); r.Status != Success {
				t.Errorf("%s against a wildcard listener: %+v", spec, r)
			}
		}
	})
}

func TestListenNothing(t *testing.T) {
	port := strconv.Itoa(testenv.FreePort(t))
	listenModes(t, func(t *testing.T, mk func(string, int) *listenProber) {
		if r := probeOnce(t, mk("listen://:"+port, os.Getpid()), time.Second); r.Status != Failure {
			t.Fatalf("nothing listens: %+v", r)
		}
	})
}

// A listener that belongs to another process is not our daemon being
// ready: the old layer's defect.
func TestListenOwnedByAnotherProcess(t *testing.T) {
	helper, port := startListenHelper(t)
	sleeper := startSleeper(t)
	spec := "listen://127.0.0.1:" + strconv.Itoa(port)
	for _, mode := range []listenMode{modeSockDiag, modeProcNet} {
		p := mustProber(t, spec).(*listenProber)
		p.mode = mode
		p.SetRoot(sleeper)
		if r := probeOnce(t, p, time.Second); r.Status != Failure || !strings.Contains(r.Detail, "outside") {
			t.Errorf("%v: foreign listener: %+v, want a failure naming it", mode, r)
		}
		p.SetRoot(helper)
		if r := probeOnce(t, p, time.Second); r.Status != Success {
			t.Errorf("%v: the helper's own listener: %+v", mode, r)
		}
		// The helper is our child: a listener anywhere in the tree counts.
		p.SetRoot(os.Getpid())
		if r := probeOnce(t, p, time.Second); r.Status != Success {
			t.Errorf("%v: listener of a descendant: %+v", mode, r)
		}
	}
}

// The hand-written sock_diag parser agrees with vishvananda/netlink's.
func TestSockDiagMatchesNetlinkLibrary(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, err := newSockDiag()
	if err != nil {
		t.Skipf("no sock_diag: %v", err)
	}
	defer d.Close()
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		ours, err := d.listeners(fam, nil)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := netlink.SocketDiagTCP(fam)
		if err != nil {
			t.Fatal(err)
		}
		want := map[uint32]uint16{}
		for _, s := range theirs {
			if s.State == tcpListenState {
				want[s.INode] = s.ID.SourcePort
			}
		}
		got := map[uint32]uint16{}
		for _, l := range ours {
			got[l.inode] = l.port
		}
		// Sockets may come and go between the two dumps (other tests run);
		// ours must at least hold our listener and agree where both see one.
		for ino, port := range got {
			if wp, ok := want[ino]; ok && wp != port {
				t.Errorf("inode %d: port %d, netlink says %d", ino, port, wp)
			}
		}
		if fam == unix.AF_INET {
			mine := uint16(ln.Addr().(*net.TCPAddr).Port)
			found := false
			for _, l := range ours {
				found = found || l.port == mine
			}
			if !found {
				t.Errorf("our listener on %d not in the sock_diag dump", mine)
			}
		}
	}
}

func TestParseProcNet(t *testing.T) {
	text := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:1068 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n" +
		"   1: 0100007F:1069 0100007F:AAAA 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n"
	got := parseProcNet([]byte(text), nil)
	if len(got) != 1 || got[0].port != 0x1068 || got[0].inode != 12345 || got[0].addr.String() != "127.0.0.1" || got[0].queued != 2 {
		t.Fatalf("parseProcNet: %+v", got)
	}
	text6 := "header\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 777 1\n"
	got = parseProcNet([]byte(text6), nil)
	if len(got) != 1 || got[0].addr.String() != "::1" || got[0].port != 8080 {
		t.Fatalf("parseProcNet v6: %+v", got)
	}
}

// The steady state of a listen:// probe (the socket already proven ours)
// allocates nothing.
func TestListenProbeAllocs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := mustProber(t, "listen://:"+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)).(*listenProber)
	p.SetRoot(os.Getpid())
	dl := deadlineIn(time.Hour)
	if r := p.Probe(bg, dl); r.Status != Success {
		t.Fatal(r)
	}
	if n := testing.AllocsPerRun(50, func() { p.Probe(bg, dl) }); n != 0 {
		t.Errorf("listen probe allocates %v times per run", n)
	}
}

// The exact lookup finds what a connection would reach: the listener
// itself, a wildcard one, and not a v6-only one from IPv4.
func TestSockDiagLookup(t *testing.T) {
	d, err := newSockDiag()
	if err != nil {
		t.Skipf("no sock_diag: %v", err)
	}
	defer d.Close()
	inode := func(ln net.Listener) uint32 {
		f, _ := ln.(*net.TCPListener).File()
		defer f.Close()
		var st unix.Stat_t
		unix.Fstat(int(f.Fd()), &st)
		return uint32(st.Ino)
	}
	ln4, _ := net.Listen("tcp4", "127.0.0.1:0")
	defer ln4.Close()
	p4 := uint16(ln4.Addr().(*net.TCPAddr).Port)
	l, ok, err := d.lookup(loop4, p4)
	if err != nil || !ok || l.inode != inode(ln4) || l.port != p4 {
		t.Fatalf("lookup 127.0.0.1:%d = %+v %v %v, want inode %d", p4, l, ok, err, inode(ln4))
	}
	if _, ok, err := d.lookup(loop6, p4); ok || err != nil {
		t.Errorf("lookup [::1]:%d found a v4-only listener (%v)", p4, err)
	}
	lnAny, _ := net.Listen("tcp", ":0")
	defer lnAny.Close()
	pa := uint16(lnAny.Addr().(*net.TCPAddr).Port)
	if l, ok, _ := d.lookup(loop4, pa); !ok || l.inode != inode(lnAny) {
		t.Errorf("lookup 127.0.0.1 does not reach the dual-stack wildcard listener: %+v", l)
	}
	if _, ok, _ := d.lookup(loop4, uint16(testenv.FreePort(t))); ok {
		t.Error("lookup found a listener on a free port")
	}
}

// A daemon bound to one address other than the loopback ones is still
// found by an any-host probe (through the table dump).
func TestListenAnyHostNonLoopbackAddress(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2: %v", err)
	}
	defer ln.Close()
	p := mustProber(t, "listen://:"+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)).(*listenProber)
	p.SetRoot(os.Getpid())
	if r := probeOnce(t, p, time.Second); r.Status != Success {
		t.Fatalf("any-host probe, listener on 127.0.0.2: %+v", r)
	}
}
