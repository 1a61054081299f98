package health

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// listenMode is how a listenProber sees sockets; it only ever degrades.
type listenMode uint8

const (
	modeSockDiag listenMode = iota // NETLINK_SOCK_DIAG, as `ss -ltn`
	modeProcNet                    // /proc/net/tcp and tcp6
	modeConnect                    // a TCP connect, like tcp://
)

func (m listenMode) String() string {
	return [...]string{"sock_diag", "/proc/net/tcp", "connect"}[m]
}

// listenProber decides readiness by seeing a LISTEN socket on the port,
// without connecting: the daemon never notices it. When it can tell, the
// socket must belong to the supervised process tree; a foreign listener on
// the port (the old layer's "orphaned" daemon, another service) is a
// failure, not readiness.
type listenProber struct {
	host netip.Addr // invalid = any address
	port uint16
	dial string // fallback connect address
	root atomic.Int64
	born atomic.Int64 // when SetRoot named the child (UnixNano), 0 = never

	mu       sync.Mutex // Probe may be called by Query and the runner alike
	mode     listenMode
	diag     *sockDiag
	found    []listener // reused per probe
	matched  []uint32   // reused per probe
	procBuf  []byte
	noV6     bool      // the kernel has no IPv6: skip ::1 lookups
	lastDump time.Time // any-host: when the socket table was last dumped
	// owned is the inode last proven to belong to the tree: while it keeps
	// listening, a probe costs two netlink round trips and nothing else.
	owned uint32
	tick  *pollTicker // paces long waits (see pace); nil until one

	dNone, dFull, dForeign, dOK, dOKUnknown string
}

func newListenProber(host string, port int) *listenProber {
	p := &listenProber{port: uint16(port)}
	dialHost := "127.0.0.1"
	if host != "" {
		p.host = netip.MustParseAddr(host)
		dialHost = host
		if p.host.IsUnspecified() {
			p.host = netip.Addr{}
			dialHost = "127.0.0.1"
		}
	}
	p.dial = net.JoinHostPort(dialHost, strconv.Itoa(port))
	ps := strconv.Itoa(port)
	p.dNone = "no LISTEN socket on port " + ps
	p.dFull = "LISTEN socket on port " + ps + ": accept queue full"
	p.dForeign = "LISTEN socket on port " + ps + " belongs to a process outside the supervised tree"
	p.dOK = "listening on port " + ps
	p.dOKUnknown = "listening on port " + ps + " (owner not verifiable)"
	return p
}

// SetRoot sets the supervised PID whose tree must own the listener; 0
// disables the ownership check.
func (p *listenProber) SetRoot(pid int) {
	p.root.Store(int64(pid))
	p.born.Store(time.Now().UnixNano())
	p.mu.Lock()
	p.owned = 0
	p.lastDump = time.Time{} // a new child's first look may dump the table
	p.mu.Unlock()
}

func (p *listenProber) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tick != nil {
		p.tick.Close()
		p.tick = nil
	}
	if p.diag != nil {
		p.diag.Close()
		p.diag = nil
	}
	return nil
}

func (p *listenProber) Probe(ctx context.Context, deadline time.Time) Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		switch p.mode {
		case modeSockDiag:
			if err := p.scanSockDiag(); err != nil {
				p.degrade()
				continue
			}
		case modeProcNet:
			if err := p.scanProcNet(); err != nil {
				p.degrade()
				continue
			}
		default:
			return dialProbe(ctx, p.dial, deadline)
		}
		return p.judge()
	}
}

func (p *listenProber) degrade() {
	if p.diag != nil {
		p.diag.Close()
		p.diag = nil
	}
	p.mode++
}

var (
	loop4 = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	loop6 = netip.IPv6Loopback()
)

// dumpEvery bounds how often an any-host probe that found nothing on the
// loopback addresses dumps the whole LISTEN table (for a daemon bound to
// one non-loopback address only): a dump walks the kernel's whole listening
// hash table, so it is kept off the millisecond schedule.
const dumpEvery = 50 * time.Millisecond

func (p *listenProber) scanSockDiag() error {
	if p.diag == nil {
		d, err := newSockDiag()
		if err != nil {
			return err
		}
		p.diag = d
	}
	p.found = p.found[:0]
	if p.host.IsValid() {
		l, ok, err := p.diag.lookup(p.host, p.port)
		if ok {
			p.found = append(p.found, l)
		}
		return err
	}
	// Any host: what a local client would reach first, then the table.
	l, ok, err := p.diag.lookup(loop4, p.port)
	if err != nil {
		return err
	}
	if ok {
		p.found = append(p.found, l)
	}
	if !p.noV6 {
		l, ok, err := p.diag.lookup(loop6, p.port)
		switch {
		case err != nil:
			p.noV6 = true // EAFNOSUPPORT and friends: an IPv4-only kernel
		case ok:
			p.found = append(p.found, l)
		}
	}
	if len(p.found) > 0 {
		return nil
	}
	if now := time.Now(); now.Sub(p.lastDump) >= dumpEvery {
		p.lastDump = now
		return p.dumpSockDiag()
	}
	return nil
}

func (p *listenProber) dumpSockDiag() error {
	var err error
	if p.found, err = p.diag.listeners(unix.AF_INET, p.found); err != nil {
		return err
	}
	p.found, err = p.diag.listeners(unix.AF_INET6, p.found)
	return err
}

func (p *listenProber) scanProcNet() error {
	var err4, err6 error
	p.found = p.found[:0]
	p.found, err4 = procNetListeners(procRoot+"/net/tcp", &p.procBuf, p.found)
	p.found, err6 = procNetListeners(procRoot+"/net/tcp6", &p.procBuf, p.found)
	if err4 != nil && err6 != nil {
		return err4
	}
	return nil
}

// matches reports whether a listener on addr accepts connections for p's
// host: the same address, or a wildcard (:: also takes IPv4 unless
// IPV6_V6ONLY, which neither source reports; we accept it).
func (p *listenProber) matches(l listener) bool {
	if l.port != p.port {
		return false
	}
	if !p.host.IsValid() || l.addr.IsUnspecified() {
		return true
	}
	return l.addr.Unmap() == p.host
}

func (p *listenProber) judge() Result {
	p.matched = p.matched[:0]
	anyFree := false
	for _, l := range p.found {
		if !p.matches(l) {
			continue
		}
		if !l.full() {
			anyFree = true
		}
		p.matched = append(p.matched, l.inode)
		if p.owned != 0 && l.inode == p.owned {
			if l.full() {
				return Result{Failure, p.dFull}
			}
			return Result{Success, p.dOK}
		}
	}
	if len(p.matched) == 0 {
		p.owned = 0
		return Result{Failure, p.dNone}
	}
	if !anyFree {
		return Result{Failure, p.dFull}
	}
	root := int(p.root.Load())
	if root <= 0 {
		return Result{Success, p.dOKUnknown}
	}
	ino, canTell := ownerOf(root, p.matched)
	switch {
	case ino != 0:
		p.owned = ino
		return Result{Success, p.dOK}
	case !canTell:
		return Result{Success, p.dOKUnknown}
	}
	return Result{Failure, p.dForeign}
}

// listenPollCap is the accelerating schedule's cap for listen:// while the
// daemon starts. There is no kernel event for listen() short of seccomp
// notification or eBPF, so the socket table is polled; one poll is one
// exact inet_diag lookup (no allocation) and invisible to the daemon.
// The cap trades lag (uniform in [0, cap]) against the CPU of waking up,
// which for the Go runtime costs far more than the lookup: 8 ms is what
// keeps p99 lag under 10 ms at the least CPU (bench/health/RESULTS.md).
const listenPollCap = 8 * time.Millisecond

// A daemon that has not listened within slowAfter of its start is loading
// something (state, databases) and will take a while yet: from then on
// the socket table is polled every slowPoll. It is seen up to slowPoll
// late instead of listenPollCap, well within the 20 ms that oxios start
// may add, and a wait of seconds costs a fifth fewer wake-ups, which are
// most of a poll's cost.
const (
	slowAfter = time.Second
	slowPoll  = 10 * time.Millisecond
)

// pace: the schedule of quickRetry for the child's first earlyWindow,
// then waitListen's, paced by a ticker.
func (p *listenProber) pace() (time.Duration, <-chan struct{}) {
	born := p.born.Load()
	if born == 0 {
		return 0, nil
	}
	age := time.Since(time.Unix(0, born))
	if age < earlyWindow {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == modeConnect {
		return 0, nil
	}
	return p.tickEvery(waitListen(age))
}

// waitListen is the poll interval for a child of age that has not
// listened yet and is past its earlyWindow: listenPollCap, then slowPoll
// once it is old (see slowAfter).
func waitListen(age time.Duration) time.Duration {
	if age < slowAfter {
		return listenPollCap
	}
	return slowPoll
}

// tickEvery paces a poll every d by p's pollTicker (d itself, a Go
// timer's wait, where there is none). Called with p.mu held.
func (p *listenProber) tickEvery(d time.Duration) (time.Duration, <-chan struct{}) {
	if p.tick == nil {
		if p.tick = newPollTicker(); p.tick == nil {
			return d, nil
		}
	}
	p.tick.arm(d)
	return tickPaced, p.tick.C
}

// quickRetry: a poll of the socket table is capped at listenPollCap; once
// degraded to connecting, it retries as tcp:// does.
func (p *listenProber) quickRetry() (hold, limit time.Duration) {
	p.mu.Lock() // Probe degrades the mode under mu
	defer p.mu.Unlock()
	if p.mode == modeConnect {
		return earlyWindow, 0
	}
	return 0, listenPollCap
}
