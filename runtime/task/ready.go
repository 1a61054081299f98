package task

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/runtime/contract"
)

// supervised: readiness comes from oxios-init unless the command replaces
// it with something else or readiness probing is off.
func (r *Runtime) supervised() bool {
	if r.cfg.Init.Readiness == "" {
		return false
	}
	cmd := r.cfg.Container.Command
	return len(cmd) == 0 || strings.Contains(filepath.Base(cmd[0]), "oxios-init")
}

// waitReady returns when oxios-init (the task's process pid) has reported
// readiness and a TCP connect to the port confirms it; or fails when the
// task exits or the timeout passes. notify, when not nil, is the sd_notify
// socket bound before the task started; it is closed on return.
func (r *Runtime) waitReady(ctx context.Context, pid uint32, exitCh <-chan client.ExitStatus, notify *net.UnixConn) error {
	timeout := r.cfg.Container.StartTimeout.D()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- r.readySignal(ctx, pid, notify) }()
	select {
	case err := <-ready:
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return &NotReadyError{Reason: fmt.Sprintf("not ready on port %d within %v (container.start_timeout)", r.cfg.Container.Port, timeout)}
		}
		return &NotReadyError{Reason: err.Error()}
	case st := <-exitCh:
		return &NotReadyError{Reason: exitReason(st)}
	}
}

func exitReason(st client.ExitStatus) string {
	code, _, err := st.Result()
	if err != nil {
		return "the task's exit could not be read: " + err.Error()
	}
	return fmt.Sprintf("the task exited with code %d before it was ready", code)
}

// readySignal waits for oxios-init's readiness (supervised) and then for a
// successful connect. Without oxios-init, connecting is the only signal.
func (r *Runtime) readySignal(ctx context.Context, pid uint32, notify *net.UnixConn) error {
	if notify != nil || r.supervised() {
		if err := r.waitSupervisorReady(ctx, pid, notify); err != nil {
			return err
		}
	}
	return r.confirmConnect(ctx)
}

// waitSupervisorReady: oxios-init sends READY=1 with the container's
// notify token to NOTIFY_SOCKET, our datagram socket in the host's
// notify/ directory; it sends its state on every change and, while ready,
// every heartbeatPeriod, so an adopted ready task (no new start-up)
// reports too. Nothing the daemon's uid can write decides readiness: a datagram
// counts only when it carries the token and, where its sender is visible
// from here, comes from the task's own PID 1 (accepted).
//
// Adopting (n == nil), oxios-init's published state is also asked once
// on its health socket, trusted only when the listener is verifiably the
// task's PID 1: then a ready task is adopted without waiting for the next
// heartbeat.
func (r *Runtime) waitSupervisorReady(ctx context.Context, pid uint32, n *net.UnixConn) error {
	adopting := n == nil
	if adopting {
		var err error
		if n, err = r.listenNotify(); err != nil {
			return err
		}
	}
	defer n.Close()
	token := goFuture(func() (string, error) { return r.notifyToken(ctx) })
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		if readNotify(n, func(m notifyMsg) bool { return m.ready && accepted(m, pid, token) }) {
			once.Do(func() { close(ready) })
		}
	}()
	if adopting {
		go func() {
			if r.publishedReady(pid) {
				once.Do(func() { close(ready) })
			}
		}()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-ready:
		return nil
	}
}

// publishedReady: oxios-init's /status says ready, and its listener is
// the task's PID 1 as seen from here.
func (r *Runtime) publishedReady(pid uint32) bool {
	var rep contract.Report
	return r.supervisorGet(pid, true, contract.PathStatus, &rep) == nil && rep.Ready
}

// notifyToken is the container's notify secret (its LabelNotifyToken).
func (r *Runtime) notifyToken(ctx context.Context) (string, error) {
	c, err := r.client.ContainerService().Get(r.ctx(ctx), r.cfg.Container.ID)
	if err != nil {
		return "", r.wrapUnavailable(err)
	}
	return c.Labels[LabelNotifyToken], nil
}

// accepted: the token must match, and the sender must be the task's PID 1
// unless the kernel hides it (pid 0: this CLI runs in another PID
// namespace than containerd, as inside systemd-nspawn; then the token is
// the only proof, and it is never in the daemon's reach). A container
// without a token label (none of ours) is judged by the PID alone.
func accepted(m notifyMsg, taskPID uint32, token *future[string]) bool {
	want, err := token.get()
	if err != nil {
		return false
	}
	if want == "" {
		return m.pid != 0 && uint32(m.pid) == taskPID
	}
	if subtle.ConstantTimeCompare([]byte(m.token), []byte(want)) != 1 {
		return false
	}
	return m.pid == 0 || uint32(m.pid) == taskPID
}

// notifyMsg is one parsed datagram.
type notifyMsg struct {
	pid   int32 // the sender, from SCM_CREDENTIALS (0: not visible here)
	ready bool  // READY=1
	token string
}

// maxNotify is the largest datagram read; a longer one (or one without
// credentials) is ignored.
const maxNotify = 4096

// readNotify reads datagrams until one satisfies ok (true) or the socket
// is closed (false).
func readNotify(c *net.UnixConn, ok func(notifyMsg) bool) bool {
	buf := make([]byte, maxNotify+1)
	oob := make([]byte, credSpace)
	for {
		n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			return false
		}
		if n > maxNotify || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			continue
		}
		m, good := parseNotify(buf[:n], oob[:oobn])
		if good && ok(m) {
			return true
		}
	}
}

// parseNotify reads the sender's credentials and the READY=1 and token
// lines; anything else in the datagram is ignored.
func parseNotify(b, oob []byte) (notifyMsg, bool) {
	var m notifyMsg
	pid, ok := senderPID(oob)
	if !ok {
		return m, false
	}
	m.pid = pid
	for _, line := range strings.Split(string(b), "\n") {
		switch k, v, _ := strings.Cut(line, "="); k {
		case "READY":
			m.ready = v == "1"
		case contract.NotifyTokenField:
			m.token = v
		}
	}
	return m, true
}

// listenNotify binds RUN_DIR/ID/notify/notify.sock with SO_PASSCRED (the
// kernel then attaches every sender's PID). The container's user must be
// able to send to it, hence mode 0666; the chmod by path is safe because
// notify/ is ours and read-only in the container, so nothing there can
// have been swapped for a link.
func (r *Runtime) listenNotify() (*net.UnixConn, error) {
	p := filepath.Join(r.notifyDir(), filepath.Base(contract.NotifySocket))
	os.Remove(p)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket %s: %w", p, err)
	}
	err = os.Chmod(p, 0o666)
	if err == nil {
		err = passCred(c)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("notify socket %s: %w", p, err)
	}
	return c, nil
}

// confirmConnect: READY=1 says the supervisor's probe passed; the
// connect proves the port answers on the host. Normally the first attempt
// succeeds; retries cover a probe that is not a connect (or no probe).
func (r *Runtime) confirmConnect(ctx context.Context) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.cfg.Container.Port))
	// No keep-alive set-up (four setsockopts): the connection is closed
	// at once, on the path between ready and oxios start's return.
	d := net.Dialer{Timeout: time.Second, KeepAlive: -1}
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no connection to %s: %w", addr, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
