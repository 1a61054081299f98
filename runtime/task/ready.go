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

// waitReady returns when oxios-init has published readiness (the ready
// file appears: an inotify event, not a poll) and a TCP connect to the
// port confirms it; or fails when the task exits or the timeout passes.
func (r *Runtime) waitReady(ctx context.Context, task client.Task, exitCh <-chan client.ExitStatus) error {
	timeout := r.cfg.Container.StartTimeout.D()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- r.readySignal(ctx) }()
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

// readySignal waits for the ready file (supervised) and then for a
// successful connect. Without oxios-init, connecting is the only signal.
func (r *Runtime) readySignal(ctx context.Context) error {
	if r.supervised() {
		if err := waitFile(ctx, r.readyPath()); err != nil {
			return err
		}
	}
	return r.confirmConnect(ctx)
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
