package health

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/a7garden/oxios/runtime/contract"
)

// On-demand answers for /startupz, /readyz and /livez.
//
// Whoever asks these paths (a kubelet, systemd's watchdog through oxios)
// applies its own period, timeout and failureThreshold. Were they to repeat
// the verdict of oxios-init's own runners, a hung daemon would be seen only
// after oxios-init's period x threshold and then the asker's on top, and the
// asker's settings would mean nothing. So each path runs the daemon's probe
// of its kind when asked, once, and answers with that one result; the asker
// counts results against its own thresholds.
//
// What the runners' state still decides:
//   - no child, or a child being restarted: the cached answer;
//   - gating: readiness and liveness are not probed before startup succeeded
//     (by the runner or by an on-demand startup probe of this same child):
//     /readyz is 503 and /livez 200 until then, as the kubelet does; once
//     it succeeded, /startupz stays 200 for this child;
//   - a probe that could not run (Unknown) is no verdict: the cached answer;
//   - a kind with no probe configured: the cached answer.
//
// Concurrent askers of one kind share one probe: a burst of clients costs
// the daemon one request, not one each.

// onDemand is the Monitor's state for on-demand answers.
type onDemand struct {
	mu         sync.Mutex
	inflight   [numKinds]*flight
	startedGen uint64 // child generation whose startup an on-demand probe saw succeed
	last       [numKinds]struct {
		gen    uint64
		status Status
	}
	// probers are the on-demand probers of stateful kinds (see
	// probeOnce), made on the first ask and kept: a new one per ask would
	// open a netlink socket and allocate its receive buffer every time.
	// A kind's prober serves one flight at a time.
	probers [numKinds]Prober
}

// flight is one on-demand probe that several askers may wait for.
type flight struct {
	done    chan struct{}
	res     Result
	waiters int // askers waiting for this probe, under onDemand.mu
}

var pathKinds = map[string]probeKind{
	contract.PathStartupz: kindStartup,
	contract.PathReadyz:   kindReadiness,
	contract.PathLivez:    kindLiveness,
}

// answerNow answers path by probing the daemon now. ok is false when the
// cached answer applies (see above); the caller then routes as before.
func (m *Monitor) answerNow(path string) (code int, body []byte, ok bool) {
	k, known := pathKinds[path]
	if !known || m.runners[k] == nil {
		return 0, nil, false
	}
	gen, pid, started, live := m.gate()
	if pid == 0 || !live {
		return 0, nil, false
	}
	// Startup succeeds once per child: after that /startupz stays 200
	// whatever the daemon does; before it, readiness and liveness are not
	// asked.
	started = started || m.startedNow(gen)
	switch {
	case k == kindStartup && started:
		return nowAnswer(k, Result{Success, "succeeded earlier"})
	case k != kindStartup && !started:
		return 0, nil, false
	}
	res := m.probeShared(k, pid)
	if res.Status == Unknown {
		return 0, nil, false
	}
	m.noteResult(k, gen, pid, res)
	return nowAnswer(k, res)
}

// noteResult records an on-demand result of the child gen and logs what
// the asker (the kubelet) now sees when that changed.
func (m *Monitor) noteResult(k probeKind, gen uint64, pid int, res Result) {
	m.od.mu.Lock()
	if k == kindStartup && res.Status == Success {
		m.od.startedGen = gen
	}
	changed := m.od.noteLocked(k, gen, res.Status)
	m.od.mu.Unlock()
	if changed {
		m.log.WithFields(logrus.Fields{"probe": k.String(), "pid": pid, "detail": res.Detail}).
			Warnf("%s asked: %s", k, res.Status)
	}
}

// noteLocked records status as kind's last on-demand result for the child
// gen and reports a transition: a change, or a first result that is a
// failure (a first success is what the runners' own lines already say).
func (o *onDemand) noteLocked(k probeKind, gen uint64, status Status) bool {
	l := &o.last[k]
	changed := l.status != status
	if l.gen != gen {
		changed = status == Failure
	}
	l.gen, l.status = gen, status
	return changed
}

// gate reads what the runners' state decides, under the monitor's lock.
func (m *Monitor) gate() (gen uint64, pid int, started, live bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.childUp || m.closed {
		return m.gen, 0, false, false
	}
	return m.gen, m.pid, m.started, m.live
}

func (m *Monitor) startedNow(gen uint64) bool {
	m.od.mu.Lock()
	defer m.od.mu.Unlock()
	return m.od.startedGen == gen && gen != 0
}

// probeShared runs kind's probe for the child pid, or waits for the one
// already running.
func (m *Monitor) probeShared(k probeKind, pid int) Result {
	m.od.mu.Lock()
	if f := m.od.inflight[k]; f != nil {
		f.waiters++
		m.od.mu.Unlock()
		<-f.done
		return f.res
	}
	f := &flight{done: make(chan struct{})}
	m.od.inflight[k] = f
	m.od.mu.Unlock()

	f.res = m.probeOnce(k, pid)
	m.od.mu.Lock()
	m.od.inflight[k] = nil
	m.od.mu.Unlock()
	close(f.done)
	return f.res
}

// probeOnce runs one probe. tcp://, http:// and exec: probers are
// stateless and shared with the runner; listen:// keeps state (its netlink
// socket, its root) that the runner's goroutine owns, so it gets a prober
// of its own, named the child afresh on every ask: gated again and its
// owner looked up again, as a new prober would be.
func (m *Monitor) probeOnce(k probeKind, pid int) Result {
	cfg := m.runners[k].cfg
	p := m.runners[k].prober
	if _, stateful := p.(rootSetter); stateful {
		var err error
		if p, err = m.od.prober(k, cfg.Spec); err != nil {
			return Result{Unknown, err.Error()}
		}
		p.(rootSetter).SetRoot(pid)
	}
	return p.Probe(context.Background(), time.Now().Add(cfg.Timeout))
}

// prober returns kind k's on-demand prober for spec, made on first use.
func (o *onDemand) prober(k probeKind, spec string) (Prober, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.probers[k] == nil {
		s, err := ParseSpec(spec)
		if err != nil { // validated by NewMonitor
			return nil, err
		}
		p, err := NewProber(s)
		if err != nil {
			return nil, err
		}
		o.probers[k] = p
	}
	return o.probers[k], nil
}

// close closes the on-demand probers; no ask may be in flight.
func (o *onDemand) close() []error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	for k, p := range o.probers {
		if c, ok := p.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
		o.probers[k] = nil
	}
	return errs
}

func nowAnswer(k probeKind, res Result) (int, []byte, bool) {
	what := [numKinds]string{"started", "ready", "live"}[k]
	if res.Status == Success {
		return 200, []byte(what + ": " + res.Detail + "\n"), true
	}
	return 503, []byte("not " + what + ": " + res.Detail + "\n"), true
}
