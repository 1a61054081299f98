package health

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"time"
)

// tcpProber connects and closes at once, sending nothing, as the kubelet's
// tcpSocket probe does. A refused or timed-out connect is a Failure.
type tcpProber struct {
	addr string
}

func newTCPProber(host string, port int) *tcpProber {
	return &tcpProber{addr: net.JoinHostPort(host, strconv.Itoa(port))}
}

func (*tcpProber) quickRetry() (hold, limit time.Duration) { return earlyWindow, 0 }

func (p *tcpProber) Probe(ctx context.Context, deadline time.Time) Result {
	return dialProbe(ctx, p.addr, deadline)
}

func dialProbe(ctx context.Context, addr string, deadline time.Time) Result {
	d := net.Dialer{Deadline: deadline}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return Result{Unknown, "cancelled"}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return Result{Failure, "connect " + addr + ": timeout"}
		}
		return Result{Failure, err.Error()}
	}
	// Closing without writing: the daemon sees an accept and an EOF, the
	// cheapest thing a connect probe can cost it.
	c.Close()
	return Result{Success, "connected"}
}
