package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/a7garden/oxios/runtime/contract"
)

// Notifier receives sd_notify(3) style states ("READY=1", "STATUS=...",
// "STOPPING=1", "WATCHDOG=1"). The CLI passes go-systemd's SdNotify.
type Notifier func(state string)

// ForegroundOptions configure Foreground.
type ForegroundOptions struct {
	Notify Notifier
	// Watchdog is systemd's WatchdogSec (0 = off); WATCHDOG=1 is sent at
	// half of it, and only while oxios-init reports the daemon live.
	Watchdog time.Duration
	// OnReady is called once the daemon is ready (the CLI prints it).
	OnReady func(*Started)
}

// Foreground starts (or adopts) the daemon and stays attached until the
// task exits or ctx is cancelled (SIGTERM/SIGINT in the CLI), which stops
// it gracefully. It returns the task's exit code. A containerd restart
// while attached is waited out, never taken for an exit.
func (r *Runtime) Foreground(ctx context.Context, o ForegroundOptions) (*Started, int, error) {
	notify := o.Notify
	if notify == nil {
		notify = func(string) {}
	}
	notify("STATUS=starting " + r.cfg.Container.ID)
	st, err := r.Start(ctx)
	if err != nil {
		return nil, 1, err
	}
	if o.OnReady != nil {
		o.OnReady(st)
	}
	notify(fmt.Sprintf("READY=1\nSTATUS=running (PID %d), ready on %s", st.PID, st.URL))
	wctx, stopWatchdog := context.WithCancel(ctx)
	defer stopWatchdog()
	go r.watchdog(wctx, st.PID, o.Watchdog, notify)
	code, err := r.waitExit(ctx)
	if ctx.Err() == nil {
		notify(fmt.Sprintf("STATUS=exited with code %d", code))
		r.cleanupExited()
		return st, code, err
	}
	notify("STOPPING=1\nSTATUS=stopping")
	res, err := r.stopRetrying()
	if err != nil {
		return st, 1, err
	}
	return st, int(res.ExitCode), nil
}

// stopRetrying stops even when containerd has just restarted and the
// connection is still re-establishing: Unavailable is retried (with a
// reconnect) for up to a minute, which systemd's stop timeout outlasts.
func (r *Runtime) stopRetrying() (*Stopped, error) {
	deadline := time.Now().Add(time.Minute)
	backoff := firstBackoff
	for {
		res, err := r.Stop(context.Background())
		if err == nil || !errors.Is(err, ErrUnreachable) || time.Now().After(deadline) {
			return res, err
		}
		r.reconnect(context.Background(), &backoff)
	}
}

// firstBackoff is the first wait before redialling containerd; it doubles
// up to 2 s.
const firstBackoff = 50 * time.Millisecond

// reconnect waits out *backoff (or until ctx ends), doubles it, and
// redials containerd; a failed redial shows in the caller's next call.
// While containerd is down there is no event to wait on, hence the timer.
func (r *Runtime) reconnect(ctx context.Context, backoff *time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(*backoff):
	}
	*backoff = min(*backoff*2, 2*time.Second)
	r.client.Reconnect()
}

// cleanupExited deletes the task and container after the daemon exited on
// its own, so the next start does not have to.
func (r *Runtime) cleanupExited() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.Stop(ctx)
}

// waitExit waits for the task's exit event. When containerd goes away the
// Wait channel reports Unavailable: reconnect and Wait again.
func (r *Runtime) waitExit(ctx context.Context) (int, error) {
	backoff := firstBackoff
	var down time.Time // when the outage began; zero while containerd answers
	waiting := func(pid uint32) {
		if !down.IsZero() {
			// The journal's last word must not stay "reconnecting".
			r.progress("containerd is back after %v: the task (PID %d) kept running", time.Since(down).Round(time.Millisecond), pid)
			down, backoff = time.Time{}, firstBackoff
		}
	}
	for {
		code, err := r.waitOnce(ctx, waiting)
		if err == nil || ctx.Err() != nil {
			return code, err
		}
		if !errdefs.IsUnavailable(err) && !errors.Is(err, ErrUnreachable) && !isTransport(err) {
			return 1, err
		}
		if down.IsZero() {
			down = time.Now()
		}
		r.progress("containerd unavailable (%v): reconnecting", err)
		r.reconnect(ctx, &backoff)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
}

// waitOnce waits for the task's exit; waiting is called once containerd
// has taken the wait (it answers again).
func (r *Runtime) waitOnce(ctx context.Context, waiting func(pid uint32)) (int, error) {
	nctx := r.ctx(ctx)
	ctr, err := r.client.LoadContainer(nctx, r.cfg.Container.ID)
	if errdefs.IsNotFound(err) {
		return 0, nil // removed by `oxios stop` from another shell
	}
	if err != nil {
		return 1, err
	}
	task, err := ctr.Task(nctx, nil)
	if errdefs.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 1, err
	}
	ch, err := task.Wait(nctx)
	if err != nil {
		return 1, err
	}
	waiting(task.Pid())
	select {
	case es := <-ch:
		code, _, err := es.Result()
		return int(code), err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// isTransport: a Wait cut by a dying containerd surfaces as the gRPC
// status Unavailable (transport closing, server gone) or, where nothing
// converted it, as the connection's own error. Classified by code and
// errno, never by message text.
func isTransport(err error) bool {
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable {
		return true
	}
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, net.ErrClosed, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// watchdog pings systemd at half the interval while oxios-init's liveness
// holds; a hung daemon then stops the pings and systemd acts. pid is the
// task's: only its PID 1's health endpoint counts.
func (r *Runtime) watchdog(ctx context.Context, pid uint32, interval time.Duration, notify Notifier) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if r.live(pid) {
				notify("WATCHDOG=1")
			}
		}
	}
}

// Live asks oxios-init's /livez (200 = live). Without a health endpoint
// a listening port counts as live.
func (r *Runtime) Live() bool { return r.live(0) }

// live is Live for the task whose PID 1 is pid (0: unknown, not checked).
func (r *Runtime) live(pid uint32) bool {
	err := r.supervisorGet(pid, false, contract.PathLivez, nil)
	if err == nil {
		return true
	}
	if r.supervised() {
		return false
	}
	return portListening(r.cfg.Container.Port)
}
