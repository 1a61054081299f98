package health

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Status is the outcome of one probe.
type Status uint8

const (
	// Unknown means the probe could not be run (it is retried, never counted).
	Unknown Status = iota
	// Success means the daemon answered as healthy.
	Success
	// Failure means the daemon answered, or failed to answer in time, as unhealthy.
	Failure
)

func (s Status) String() string {
	switch s {
	case Success:
		return "success"
	case Failure:
		return "failure"
	}
	return "unknown"
}

// Result is a Status with a human-readable detail. Detail strings on the
// hot path are constants so that a steady probe does not allocate.
type Result struct {
	Status Status
	Detail string
}

// Prober runs one probe. A failed probe is a Result, never an error.
// deadline bounds the probe (its timeout); ctx cancels it early when the
// child exits or the monitor closes.
type Prober interface {
	Probe(ctx context.Context, deadline time.Time) Result
}

// rootSetter is implemented by probers that need the supervised PID
// (listen:// matches socket owners against its process tree).
type rootSetter interface {
	SetRoot(pid int)
}

// gatedHTTP is an http(s):// prober, gated by the port's LISTEN socket
// when the URL's host is local (see gated).
func gatedHTTP(raw string) Prober {
	p := newHTTPProber(raw)
	port, _ := strconv.Atoi(hostPortOnly(p.url))
	return gated(p, p.url.Hostname(), port)
}

// NewProber builds the prober for a parsed spec. Its exec: probes have no
// Spawner and report Unknown; the monitor builds them with Hooks.Spawner.
func NewProber(s Spec) (Prober, error) { return newProber(s, nil) }

func newProber(s Spec, sp Spawner) (Prober, error) {
	switch s.Kind {
	case KindTCP:
		return gated(newTCPProber(s.Host, s.Port), s.Host, s.Port), nil
	case KindHTTPS:
		if clientTLS == nil {
			return nil, ErrNoHTTPS
		}
		return gatedHTTP(s.URL), nil
	case KindHTTP:
		return gatedHTTP(s.URL), nil
	case KindExec:
		return newExecProber(s.Argv, sp), nil
	case KindListen:
		return newListenProber(s.Host, s.Port), nil
	case KindNotify:
		return nil, fmt.Errorf("%w: notify:// probes run inside a Monitor (they share its NOTIFY_SOCKET)", ErrSpec)
	}
	return nil, fmt.Errorf("%w: unknown kind %q", ErrSpec, s.Kind)
}
