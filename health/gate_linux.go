package health

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// gatedProber puts a LISTEN check in front of a tcp:// or http:// probe of
// a local address until the probe's first success: it asks the kernel (as
// listen:// does) whether the supervised tree listens on the port, and
// connects only once it does. Nothing connects to a daemon that is not
// listening yet, a port held by a process outside the tree is not
// readiness, and the wait for LISTEN costs one netlink lookup a poll
// instead of a connect. After the first success the probe is the plain
// connecting one, under the kubelet's rules.
type gatedProber struct {
	inner Prober
	gate  *listenProber
	early *earlyHTTP // http://: the attempts before the first success

	mu     sync.Mutex
	born   time.Time // when SetRoot named this child
	passed bool      // inner succeeded for this child: ungated from now on
	openAt time.Time // when the gate was first seen open since it was last closed
}

// Spacing of the gated probe before its first success (see pace): while
// the port does not listen, lookups are held at earlyRetry for the
// child's first earlyWindow (most daemons listen within it, and a lookup
// is cheap), then every gatedPollCap, then every slowPoll after
// slowAfter, as listen:// does; once it listens, the probe retries every
// earlyRetry for earlyWindow (most daemons answer soon after they listen,
// and are seen within 2 ms), then every listeningRetry. An attempt costs
// oxios-init more than a lookup (an HTTP exchange; a loopback handshake
// runs in the connecting process's context), so a daemon that listens
// long before it answers 2xx (loading its state behind a 503) is asked
// every listeningRetry on one kept-alive connection (earlyHTTP), and
// seen within 20 ms with what follows; a daemon that can say when it is
// ready does better with notify://. The waits longer than earlyRetry are
// paced by a pollTicker, whose wake-up costs a fraction of a Go timer's.
const listeningRetry = 15 * time.Millisecond

// gatedPollCap is listenPollCap for a gated probe. Its readiness needs one
// more step after the lookup that finds the listener, a connect or an HTTP
// exchange (up to 2-3 ms when the daemon's accept loop is slow to run),
// so it looks a little more often to be seen as soon as listen:// is: p99
// under 10 ms in make bench-health, where 8 ms gave 10.3-11.6 for http://.
// The cost is a third more wake-ups in the phase it applies to (50 ms to
// slowAfter), under a tenth more CPU over a 5 s wait.
const gatedPollCap = 6 * time.Millisecond

// gated wraps p, a prober connecting to host:port, when host is an
// address of this machine; it returns p itself otherwise (another host's
// sockets are not in our kernel's tables), so that a remote address keeps
// the connecting schedule.
func gated(p Prober, host string, port int) Prober {
	gh, ok := localGateHost(host)
	if !ok {
		return p
	}
	g := &gatedProber{inner: p, gate: newListenProber(gh, port)}
	if h, ok := p.(*httpProber); ok {
		g.early = newEarlyHTTP(h)
	}
	return g
}

// localGateHost maps a probe's host to the listen:// host that sees its
// listener: "" (any address: the loopback lookups, then the table) for
// localhost and the unspecified address, the address itself for a
// loopback or interface address. ok is false for anything else,
// including a name other than localhost: oxios-init does not resolve
// names before the daemon listens.
func localGateHost(host string) (string, bool) {
	if host == "localhost" {
		return "", true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return "", false
	}
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return "", true
	case a.IsLoopback():
		return a.String(), true
	}
	return a.String(), isInterfaceAddr(a)
}

// isInterfaceAddr reports whether a is assigned to an interface of this
// network namespace.
func isInterfaceAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(n.IP); ok && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// SetRoot names the supervised tree that must own the listener; a new
// child is gated again until its first success.
func (g *gatedProber) SetRoot(pid int) {
	g.gate.SetRoot(pid)
	g.mu.Lock()
	g.born, g.passed, g.openAt = time.Now(), false, time.Time{}
	g.mu.Unlock()
	g.endEarly()
}

func (g *gatedProber) Close() error {
	g.endEarly()
	return g.gate.Close()
}

func (g *gatedProber) endEarly() {
	if g.early != nil {
		g.early.end()
	}
}

// blind reports whether the gate cannot see sockets (no sock_diag and no
// /proc/net/tcp): it would connect itself, so the probe goes ungated.
func (g *gatedProber) blind() bool {
	g.gate.mu.Lock()
	defer g.gate.mu.Unlock()
	return g.gate.mode == modeConnect
}

func (g *gatedProber) Probe(ctx context.Context, deadline time.Time) Result {
	g.mu.Lock()
	passed := g.passed
	g.mu.Unlock()
	if passed || g.blind() {
		return g.inner.Probe(ctx, deadline)
	}
	if g.early != nil {
		if res, ok := g.early.probeKept(ctx, deadline); ok {
			return g.judged(res)
		}
	}
	r := g.gate.Probe(ctx, deadline)
	if g.blind() { // degraded during this probe: r came from a connect
		return g.inner.Probe(ctx, deadline)
	}
	g.mu.Lock()
	if r.Status != Success {
		g.openAt = time.Time{}
		g.mu.Unlock()
		return Result{Failure, r.Detail + " (not connecting)"}
	}
	if g.openAt.IsZero() {
		g.openAt = time.Now()
	}
	g.mu.Unlock()
	return g.judged(g.attempt(ctx, deadline))
}

// judged is res, an attempt's result before the first success; a success
// ungates the probe.
func (g *gatedProber) judged(res Result) Result {
	if res.Status == Success {
		g.mu.Lock()
		g.passed = true
		g.mu.Unlock()
		g.endEarly()
	}
	return res
}

// attempt is the inner probe before its first success: early's, where it
// decides, else the plain one.
func (g *gatedProber) attempt(ctx context.Context, deadline time.Time) Result {
	if g.early != nil {
		if res, ok := g.early.probe(ctx, deadline); ok {
			return res
		}
	}
	return g.inner.Probe(ctx, deadline)
}

// pace: see listeningRetry. A blind gate leaves the schedule to
// quickRetry, as for a remote address.
func (g *gatedProber) pace() (time.Duration, <-chan struct{}) {
	if g.blind() {
		return 0, nil
	}
	g.mu.Lock()
	d := g.interval()
	g.mu.Unlock()
	if d <= earlyRetry {
		return d, nil
	}
	g.gate.mu.Lock()
	defer g.gate.mu.Unlock()
	return g.gate.tickEvery(d)
}

// interval is the wait before the next attempt; a long one is paced by
// the gate's ticker. Called with g.mu held.
func (g *gatedProber) interval() time.Duration {
	if g.openAt.IsZero() {
		switch age := time.Since(g.born); {
		case age < earlyWindow:
			return earlyRetry
		case age < slowAfter:
			return gatedPollCap
		}
		return slowPoll
	}
	if time.Since(g.openAt) < earlyWindow {
		return earlyRetry
	}
	return listeningRetry
}

// quickRetry is the schedule of a blind gate: the inner prober's.
func (g *gatedProber) quickRetry() (hold, limit time.Duration) {
	if q, ok := g.inner.(quickRetrier); ok {
		return q.quickRetry()
	}
	return 0, 0
}
