package health

import (
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
)

// Notify readiness (notify://): oxios-init offers the daemon a
// NOTIFY_SOCKET of its own, and the daemon is ready when it sends READY=1
// there, the sd_notify protocol of systemd's Type=notify. Only processes
// of the supervised tree are listened to (the sender's PID from
// SCM_CREDENTIALS, then its ancestry), as systemd's NotifyAccess=all does
// with cgroups. The socket is the daemon's, never the one oxios-init itself
// was given (the host's, for oxios-init's own READY=1): the daemon does not
// get that one at all.

// notifyEnv is the variable of the sd_notify protocol.
const notifyEnv = "NOTIFY_SOCKET"

// notifyMax is the largest datagram taken: systemd's NOTIFY_BUFFER_MAX.
const notifyMax = 4096

// maxPending bounds the messages kept while no child is registered (sent
// between the daemon's fork and Monitor.ChildStarted).
const maxPending = 16

// PrepareNotify chooses the NOTIFY_SOCKET that oxios-init will offer the
// daemon when one of the probes is notify://, records it in
// c.NotifySocket and returns it; it returns "" when no probe is. The
// socket is bound by Monitor.Start. Call it before building the daemon's
// environment (ChildEnv).
func (c *Config) PrepareNotify() (string, error) {
	if !c.usesNotify() {
		return "", nil
	}
	if c.NotifySocket == "" {
		name, err := notifyName()
		if err != nil {
			return "", err
		}
		c.NotifySocket = name
	}
	return c.NotifySocket, nil
}

func (c *Config) usesNotify() bool {
	for _, p := range []ProbeConfig{c.Startup, c.Readiness, c.Liveness} {
		if strings.HasPrefix(p.Spec, "notify") {
			return true
		}
	}
	return false
}

// ChildEnv is environ for the daemon: without the NOTIFY_SOCKET that
// oxios-init received (the daemon must not tell oxios-init's own
// supervisor that it is ready: oxios-init decides that), and with notify
// as its NOTIFY_SOCKET when not empty.
func ChildEnv(environ []string, notify string) []string {
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, notifyEnv+"=") {
			out = append(out, kv)
		}
	}
	if notify != "" {
		out = append(out, notifyEnv+"="+notify)
	}
	return out
}

// notifyMsg is one accepted datagram's assignments that matter.
type notifyMsg struct {
	pid      int
	ready    bool
	stopping bool
	status   *string
}

// parseNotify reads a datagram of newline-separated KEY=VALUE lines; ok
// is false for a malformed one (not UTF-8, a NUL, a line without '=').
// Keys other than READY, STOPPING and STATUS are ignored, as systemd
// ignores what it does not know.
func parseNotify(b []byte) (m notifyMsg, ok bool) {
	if !utf8.Valid(b) {
		return m, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		k, v, found := strings.Cut(line, "=")
		if !found || k == "" || strings.IndexByte(line, 0) >= 0 {
			return notifyMsg{}, false
		}
		switch k {
		case "READY":
			m.ready = m.ready || v == "1"
		case "STOPPING":
			m.stopping = m.stopping || v == "1"
		case "STATUS":
			v := v
			m.status = &v
		}
	}
	return m, true
}

// notifyState is what the daemon said, for the current child only.
type notifyState struct {
	log *logrus.Logger

	mu       sync.Mutex
	root     int // the daemon's PID; 0 between children
	ready    bool
	stopping bool
	status   string
	readyPID int
	changed  chan struct{} // closed and replaced at every change
	pending  []notifyMsg   // received while root was 0
	refused  map[string]bool
	inTree   func(root, pid int) bool
}

func newNotifyState(log *logrus.Logger) *notifyState {
	return &notifyState{log: log, changed: make(chan struct{}), refused: map[string]bool{}, inTree: inProcessTree}
}

// refuse logs a refused datagram once per reason, at debug level: a
// flood of garbage must not flood the log.
func (s *notifyState) refuse(reason string, pid int) {
	s.mu.Lock()
	first := !s.refused[reason]
	s.refused[reason] = true
	s.mu.Unlock()
	if first {
		s.log.WithFields(logrus.Fields{"reason": reason, "sender_pid": pid}).
			Debug("notify socket: datagram ignored (logged once per reason)")
	}
}

// setRoot starts over for the child pid (0: none). Messages received
// while no child was registered are taken now if their sender belongs to
// the new tree: the daemon may speak before the monitor hears of it.
func (s *notifyState) setRoot(pid int) {
	s.mu.Lock()
	if pid == s.root {
		s.mu.Unlock()
		return
	}
	s.root = pid
	s.ready, s.stopping, s.status, s.readyPID = false, false, "", 0
	pending := s.pending
	s.pending = nil
	s.signalLocked()
	s.mu.Unlock()
	for _, m := range pending {
		s.receive(m)
	}
}

// receive applies one well-formed message from pid.
func (s *notifyState) receive(m notifyMsg) {
	s.mu.Lock()
	root := s.root
	if root == 0 {
		full := len(s.pending) >= maxPending
		if !full {
			s.pending = append(s.pending, m)
			s.signalLocked() // for tests; a runner only probes again
		}
		s.mu.Unlock()
		if full {
			s.refuse("too many datagrams before the daemon was registered", m.pid)
		}
		return
	}
	s.mu.Unlock()
	// The ancestry is read outside the lock: /proc reads are slow.
	if m.pid <= 0 || !s.inTree(root, m.pid) {
		s.refuse("sender outside the supervised tree", m.pid)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root != root {
		return // the child changed meanwhile
	}
	changed := false
	if m.ready && !s.ready {
		s.ready, s.readyPID, changed = true, m.pid, true
		s.log.WithField("pid", m.pid).Info("daemon sent READY=1")
	}
	if m.stopping && !s.stopping {
		s.stopping, changed = true, true
		s.log.WithField("pid", m.pid).Info("daemon sent STOPPING=1")
	}
	if m.status != nil && *m.status != s.status {
		s.status, changed = *m.status, true
	}
	if changed {
		s.signalLocked()
	}
}

func (s *notifyState) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Status is the daemon's last STATUS= text ("" when none).
func (s *notifyState) Status() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// notifyProber is a notify:// probe: a success once READY=1 came from the
// tree (and not STOPPING=1), then, for notify+SPEC, SPEC's result.
type notifyProber struct {
	st   *notifyState
	then Prober // nil for plain notify://

	mu    sync.Mutex
	seen  <-chan struct{} // st.changed as of the last probe
	ready bool            // READY=1 as of the last probe
}

func newNotifyProber(st *notifyState, then Prober) *notifyProber {
	return &notifyProber{st: st, then: then}
}

func (p *notifyProber) SetRoot(pid int) {
	p.st.setRoot(pid)
	if rs, ok := p.then.(rootSetter); ok {
		rs.SetRoot(pid)
	}
}

func (p *notifyProber) Probe(ctx context.Context, deadline time.Time) Result {
	p.st.mu.Lock()
	seen, ready, stopping, pid := p.st.changed, p.st.ready, p.st.stopping, p.st.readyPID
	p.st.mu.Unlock()
	p.mu.Lock()
	p.seen, p.ready = seen, ready && !stopping
	p.mu.Unlock()
	switch {
	case stopping:
		return Result{Failure, "the daemon sent STOPPING=1"}
	case !ready:
		return Result{Failure, "no READY=1 on NOTIFY_SOCKET yet"}
	case p.then == nil:
		return Result{Success, "READY=1 from pid " + strconv.Itoa(pid)}
	}
	return p.then.Probe(ctx, deadline)
}

// pace: before READY=1 nothing changes until a datagram arrives, so the
// runner waits for it (the channel seen by the last probe: a change since
// then has closed it already); after, the confirming probe's schedule.
func (p *notifyProber) pace() (time.Duration, <-chan struct{}) {
	p.mu.Lock()
	seen, ready := p.seen, p.ready
	p.mu.Unlock()
	if !ready && seen != nil {
		return 0, seen
	}
	if q, ok := p.then.(pacer); ok {
		return q.pace()
	}
	return 0, nil
}

func (p *notifyProber) quickRetry() (hold, limit time.Duration) {
	if q, ok := p.then.(quickRetrier); ok {
		return q.quickRetry()
	}
	return 0, 0
}

func (p *notifyProber) Close() error {
	if c, ok := p.then.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
