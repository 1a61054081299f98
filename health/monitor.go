package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/google/renameio/v2"
	"github.com/sirupsen/logrus"
)

// Monitor owns the probe runners and the exposure of their results.
type Monitor struct {
	cfg     Config
	hooks   Hooks
	log     *logrus.Logger
	runners [numKinds]*runner // nil when that probe is off
	notify  *notifySocket     // the daemon's NOTIFY_SOCKET, nil without notify://
	notifSt *notifyState

	mu        sync.Mutex
	gen       uint64 // child generation: verdicts of an old child are ignored
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	pid       int
	childUp   bool
	startedAt time.Time
	started   bool // startup probe succeeded (or none)
	probeOK   bool // readiness probe's state (true when none)
	live      bool
	ready     bool // published state
	notified  bool // READY=1 sent
	closed    bool
	host      *hostNotifier // nil without Config.NotifyToken

	ln      net.Listener
	conns   sync.WaitGroup // health endpoint connections being served
	waiting connSet        // of those, the ones still waiting for their request
	done    chan struct{}  // closed when the accept loop returns

	od onDemand // /startupz /readyz /livez probe when asked (ondemand.go)
}

// NewMonitor validates cfg and prepares (does not start) the monitor.
func NewMonitor(cfg Config, hooks Hooks, log *logrus.Logger) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = logrus.New()
		log.SetOutput(io.Discard)
	}
	m := &Monitor{cfg: cfg, hooks: hooks, log: log, live: true}
	for k := probeKind(0); k < numKinds; k++ {
		pc := *cfg.probe(k.String())
		if pc.Spec == "" {
			continue
		}
		spec, _ := ParseSpec(pc.Spec) // validated above
		p, err := m.newProber(spec, hooks.Spawner)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", k, err)
		}
		m.runners[k] = newRunner(k, pc, p)
	}
	return m, nil
}

// Start opens the health endpoint, if configured. It must be called before
// the first child starts.
func (m *Monitor) Start() error {
	if m.notify != nil {
		if err := m.notify.open(); err != nil {
			return err
		}
	}
	if m.cfg.ReadyFile != "" {
		// A ready file left by an oxios-init that was killed would claim
		// readiness for a daemon that has not started yet.
		if err := os.Remove(m.cfg.ReadyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--ready-file %s: remove the previous run's file: %w", m.cfg.ReadyFile, err)
		}
	}
	if m.host = newHostNotifier(m.cfg.NotifyToken); m.host != nil {
		go m.host.beat(m.Ready)
	}
	if m.cfg.HealthListen == "" {
		return nil
	}
	ln, err := listenHealth(m.cfg.HealthListen)
	if err != nil {
		return fmt.Errorf("--health-listen %s: %w", m.cfg.HealthListen, err)
	}
	m.ln = ln
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		m.serve(ln)
	}()
	m.log.WithField("addr", m.cfg.HealthListen).Debug("health endpoint listening")
	return nil
}

// ChildStarted resets every probe and starts the runners for the child
// whose PID is pid (listen:// matches sockets against its process tree).
func (m *Monitor) ChildStarted(pid int) {
	m.stopRunners()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.gen++
	gen := m.gen
	m.pid, m.childUp, m.startedAt = pid, true, time.Now()
	m.started = m.runners[kindStartup] == nil
	m.probeOK = m.runners[kindReadiness] == nil
	m.live = true
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	for _, r := range m.runners {
		if r == nil {
			continue
		}
		r.reset()
		if rs, ok := r.prober.(rootSetter); ok {
			rs.SetRoot(pid)
		}
	}
	if m.started {
		m.startGatedLocked(ctx, gen)
	} else {
		m.goRun(ctx, gen, kindStartup, m.startedAt.Add(m.runners[kindStartup].cfg.InitialDelay))
	}
	m.publishLocked()
}

// startGatedLocked starts readiness and liveness, which the startup probe
// gates. Their initialDelay counts from the child's start, as the
// kubelet's does.
func (m *Monitor) startGatedLocked(ctx context.Context, gen uint64) {
	now := time.Now()
	for _, k := range []probeKind{kindReadiness, kindLiveness} {
		r := m.runners[k]
		if r == nil {
			continue
		}
		at := m.startedAt.Add(r.cfg.InitialDelay)
		if at.Before(now) {
			at = now
		}
		m.goRun(ctx, gen, k, at)
	}
}

func (m *Monitor) goRun(ctx context.Context, gen uint64, k probeKind, at time.Time) {
	r := m.runners[k]
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		r.run(ctx, at, func(v verdict, res Result) { m.decide(ctx, gen, k, v, res) })
	}()
}

// decide acts on a runner's verdict. It runs on the runner's goroutine.
func (m *Monitor) decide(ctx context.Context, gen uint64, k probeKind, v verdict, res Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen != m.gen || m.closed || !m.childUp || ctx.Err() != nil {
		return
	}
	entry := m.log.WithFields(logrus.Fields{"probe": k.String(), "pid": m.pid, "detail": res.Detail})
	switch v {
	case vStarted:
		entry.Warn("startup probe succeeded")
		m.started = true
		m.startGatedLocked(ctx, gen)
	case vReady:
		entry.Warn("readiness probe succeeded")
		m.probeOK = true
	case vNotReady:
		entry.Warn("readiness probe failed: not ready")
		m.probeOK = false
	case vRestart:
		reason := k.String() + " probe failed: " + res.Detail
		entry.Warn("probe failed: restarting the daemon")
		m.live = false
		// A daemon about to be stopped takes no more traffic.
		m.probeOK = false
		if m.hooks.Restart != nil {
			// Synchronously, so the request is made while this child's
			// generation is current: a late goroutine could stop the next
			// child. Hooks.Restart must not block (ChildExited waits for
			// this runner to return).
			m.hooks.Restart(reason)
		}
	}
	m.publishLocked()
}

// ChildExited stops the runners and marks the daemon not ready.
func (m *Monitor) ChildExited(status int) {
	m.stopRunners()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.childUp, m.pid = false, 0
	m.started = false
	if m.notifSt != nil {
		m.notifSt.setRoot(0) // a READY=1 of the next child must come anew
	}
	m.probeOK = m.runners[kindReadiness] == nil
	m.log.WithField("status", status).Debug("child exited: probes stopped")
	m.publishLocked()
}

func (m *Monitor) stopRunners() {
	m.mu.Lock()
	cancel := m.cancel
	m.cancel = nil
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	m.wg.Wait()
}

// Close stops everything and removes the ready file.
func (m *Monitor) Close() error {
	m.stopRunners()
	m.mu.Lock()
	m.closed = true
	m.childUp = false
	m.publishLocked()
	m.mu.Unlock()
	m.host.close()
	var errs []error
	for _, r := range m.runners {
		if r == nil {
			continue
		}
		if c, ok := r.prober.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	if m.notify != nil {
		errs = append(errs, m.notify.Close())
	}
	if m.ln != nil {
		// Closing a unix listener also removes its socket file.
		if err := m.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
		<-m.done
		m.waiting.closeAll()
		m.conns.Wait() // each being answered has a deadline of writeTimeout
		errs = append(errs, m.od.close()...)
	}
	return errors.Join(errs...)
}

// readyLocked: the kubelet's pod readiness for one container.
func (m *Monitor) readyLocked() bool {
	return m.childUp && m.started && m.probeOK && m.live && !m.closed
}

// publishLocked makes the ready file and sd_notify follow the state.
func (m *Monitor) publishLocked() {
	ready := m.readyLocked()
	if ready == m.ready {
		return
	}
	m.ready = ready
	m.host.send(ready)
	// Logged last: whoever reads the log sees the file and sd_notify done.
	defer m.log.WithFields(logrus.Fields{"ready": ready, "pid": m.pid}).Info("readiness changed")
	if m.cfg.ReadyFile != "" {
		var err error
		if ready {
			err = createReadyFile(m.cfg.ReadyFile, m.pid)
		} else {
			err = os.Remove(m.cfg.ReadyFile)
			if errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		}
		if err != nil {
			m.log.WithError(err).WithField("ready-file", m.cfg.ReadyFile).Error("cannot update the ready file")
		}
	}
	if ready && !m.notified && m.host == nil {
		// READY=1 means "start-up finished" to systemd: once per life.
		// Under oxios (a notify token) the host's protocol above says it,
		// with the token; a plain READY=1 there would only be refused.
		if sent, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
			m.log.WithError(err).Warn("sd_notify READY=1 failed (NOTIFY_SOCKET)")
		} else if sent {
			m.notified = true
		}
	}
}

// createReadyFile writes PATH atomically: a reader sees it whole or not at
// all (written under a temporary name in the same directory, then renamed).
func createReadyFile(path string, pid int) error {
	return renameio.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

// state is the monitor's published state, copied under the lock.
type state struct {
	childUp, started, ready, live bool
}

func (m *Monitor) state() state {
	m.mu.Lock()
	defer m.mu.Unlock()
	return state{childUp: m.childUp, started: m.childUp && m.started, ready: m.ready, live: m.live}
}

func checkListenAddr(a string) error {
	if p, ok := strings.CutPrefix(a, "unix:"); ok {
		if p == "" {
			return errors.New("empty socket path")
		}
		return nil
	}
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("want HOST:PORT or unix:/path: %w", err)
	}
	if port == "0" {
		return nil
	}
	_, err = parsePort(port)
	return err
}

func listenHealth(addr string) (net.Listener, error) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		ln, err := net.Listen("unix", p)
		if err != nil && errors.Is(err, syscall.EADDRINUSE) && staleSocket(p) {
			// A socket left by a previous run that nobody answers on.
			os.Remove(p)
			ln, err = net.Listen("unix", p)
		}
		return ln, err
	}
	return net.Listen("tcp", addr)
}

func staleSocket(p string) bool {
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return false
	}
	c, err := net.DialTimeout("unix", p, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return true
}

// Addr is the health endpoint's address (useful with port 0), or nil.
func (m *Monitor) Addr() net.Addr {
	if m.ln == nil {
		return nil
	}
	return m.ln.Addr()
}

// Ready reports whether the daemon is ready now.
func (m *Monitor) Ready() bool { return m.state().ready }

// newProber is NewProber, plus notify://, whose probers share the
// monitor's NOTIFY_SOCKET.
func (m *Monitor) newProber(spec Spec, sp Spawner) (Prober, error) {
	if spec.Kind != KindNotify {
		return newProber(spec, sp)
	}
	if m.notify == nil {
		name, err := m.cfg.PrepareNotify()
		if err != nil {
			return nil, err
		}
		m.notifSt = newNotifyState(m.log)
		m.notify = newNotifySocket(name, m.notifSt)
	}
	var then Prober
	if spec.Then != nil {
		var err error
		if then, err = newProber(*spec.Then, sp); err != nil {
			return nil, err
		}
	}
	return newNotifyProber(m.notifSt, then), nil
}
