package task

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/a7garden/oxios/runtime/config"
)

// readyPath is the host path of oxios-init's ready file.
func (r *Runtime) readyPath() string {
	return filepath.Join(r.runDir(), filepath.Base(config.ReadyFile))
}

// healthSocket is the host path of oxios-init's health endpoint.
func (r *Runtime) healthSocket() string {
	return filepath.Join(r.runDir(), filepath.Base(config.HealthSocket))
}

// clearReady removes a ready file left by an earlier task: it would
// otherwise read as ready before the new daemon is.
func (r *Runtime) clearReady() error {
	if err := os.MkdirAll(r.runDir(), 0o750); err != nil {
		return err
	}
	if err := os.Remove(r.readyPath()); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove stale ready file: %w", err)
	}
	return nil
}

// supervised: readiness comes from oxios-init unless the command replaces
// it with something else or readiness probing is off.
func (r *Runtime) supervised() bool {
	if r.cfg.Init.Readiness == "" {
		return false
	}
	cmd := r.cfg.Container.Command
	return len(cmd) == 0 || strings.Contains(filepath.Base(cmd[0]), "oxios-init")
}

// waitReady returns when oxios-init has published readiness and a TCP
// connect to the port confirms it; or fails when the task exits or the
// timeout passes. notify, when not nil, is the sd_notify socket bound
// before the task started; it is closed on return.
func (r *Runtime) waitReady(ctx context.Context, exitCh <-chan client.ExitStatus, notify *net.UnixConn) error {
	timeout := r.cfg.Container.StartTimeout.D()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- r.readySignal(ctx, notify) }()
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
func (r *Runtime) readySignal(ctx context.Context, notify *net.UnixConn) error {
	if notify != nil || r.supervised() {
		if err := r.waitSupervisorReady(ctx, notify); err != nil {
			return err
		}
	}
	return r.confirmConnect(ctx)
}

// waitSupervisorReady: oxios-init writes its ready file, then sends
// sd_notify READY=1 to NOTIFY_SOCKET, which is our datagram socket on the
// bind-mounted run dir: an event, with no inotify instance, whose teardown
// costs a kernel RCU grace period (5-25 ms measured here) at close or at
// process exit. The ready file decides (a READY=1 from the daemon itself
// does not count); a slow re-check of it covers a READY=1 sent while no
// socket was bound (an adopted task), or an oxios-init without sd_notify.
func (r *Runtime) waitSupervisorReady(ctx context.Context, n *net.UnixConn) error {
	if n == nil {
		var err error
		if n, err = r.listenNotify(); err != nil {
			return err
		}
	}
	defer n.Close()
	msgs := make(chan struct{}, 1)
	go readNotify(n, msgs)
	tick := time.NewTicker(readyRecheck)
	defer tick.Stop()
	for {
		if _, err := os.Stat(r.readyPath()); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-msgs:
		case <-tick.C:
		}
	}
}

// readyRecheck is the fallback period of waitSupervisorReady: the event
// normally arrives long before it.
const readyRecheck = 250 * time.Millisecond

func readNotify(c *net.UnixConn, msgs chan<- struct{}) {
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if strings.Contains(string(buf[:n]), "READY=1") {
			select {
			case msgs <- struct{}{}:
			default:
			}
		}
	}
}

// listenNotify binds RUN_DIR/ID/notify.sock (replacing a stale one). The
// container's user must be able to send to it: mode 0666 is safe because
// the run dir itself is 0750 and owned by that user.
func (r *Runtime) listenNotify() (*net.UnixConn, error) {
	p := filepath.Join(r.runDir(), filepath.Base(config.NotifySocket))
	os.Remove(p)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket %s: %w", p, err)
	}
	if err := os.Chmod(p, 0o666); err != nil {
		c.Close()
		return nil, fmt.Errorf("notify socket %s: %w", p, err)
	}
	return c, nil
}

// confirmConnect: the ready file says the supervisor's probe passed; the
// connect proves the port answers on the host. Normally the first attempt
// succeeds; retries cover a probe that is not a connect (or no probe).
func (r *Runtime) confirmConnect(ctx context.Context) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.cfg.Container.Port))
	d := net.Dialer{Timeout: time.Second}
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
