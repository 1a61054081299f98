//go:build !linux

package health

import (
	"context"
	"net"
	"strconv"
	"time"
)

// listenProber without sock_diag or /proc: a connect, as tcp:// does.
type listenProber struct{ dial string }

func newListenProber(host string, port int) *listenProber {
	if host == "" {
		host = "127.0.0.1"
	}
	return &listenProber{dial: net.JoinHostPort(host, strconv.Itoa(port))}
}

func (p *listenProber) SetRoot(int) {}

// quickRetry: a connect, retried as tcp:// is.
func (p *listenProber) quickRetry() (hold, limit time.Duration) { return earlyWindow, 0 }

func (p *listenProber) Probe(ctx context.Context, deadline time.Time) Result {
	return dialProbe(ctx, p.dial, deadline)
}
