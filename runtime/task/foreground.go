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
	// OnReady is called once the daemon is ready (the CLI prints it),
	// again after each upgrade it stayed attached through.
	OnReady func(*Started)
	// Upgrading is asked when the task exits: whether an upgrade or
	// rollback (`oxios upgrade`, `oxios rollback`, run by hand or by the
	// timer) is replacing the daemon, and what it does ("upgrading to
	// REF"). Such an exit is not the service's: Foreground says
	// RELOADING=1, waits for the upgrade to let go of the start lock,
	// attaches to whatever daemon it left and says READY=1 again, so
	// systemd neither fails nor restarts the unit. nil: never.
	Upgrading func() (status string, ok bool)
	// Outcome, after such an upgrade, says how it ended (for STATUS= and
	// the journal; "" = nothing to say).
	Outcome func() string
	// Reattach starts or adopts the daemon after an upgrade; nil = Start.
	// The CLI passes its own start, which recovers an interrupted upgrade.
	Reattach func(context.Context) (*Started, error)
}

// Foreground starts (or adopts) the daemon and stays attached until the
// task exits or ctx is cancelled (SIGTERM/SIGINT in the CLI), which stops
// it gracefully. It returns the task's exit code. A containerd restart
// while attached is waited out, never taken for an exit; so is an
// upgrade that replaces the task (o.Upgrading).
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
	for after := false; ; after = true {
		if o.OnReady != nil {
			o.OnReady(st)
		}
		notify(fmt.Sprintf("READY=1\nSTATUS=running (PID %d), ready on %s%s", st.PID, st.URL, outcome(o, after)))
		code, err := r.attached(ctx, st.PID, o, notify)
		if ctx.Err() != nil {
			break
		}
		status, upgrading := "", false
		if err == nil && o.Upgrading != nil {
			status, upgrading = o.Upgrading()
		}
		if !upgrading {
			notify(fmt.Sprintf("STATUS=exited with code %d", code))
			r.cleanupExited()
			return st, code, err
		}
		next, err := r.followUpgrade(ctx, o, status, notify)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			return st, 1, err
		}
		st = next
	}
	notify("STOPPING=1\nSTATUS=stopping")
	res, err := r.stopRetrying()
	if err != nil {
		return st, 1, err
	}
	return st, int(res.ExitCode), nil
}

// outcome is "; " and how the upgrade went, after an upgrade.
func outcome(o ForegroundOptions, afterUpgrade bool) string {
	if !afterUpgrade || o.Outcome == nil {
		return ""
	}
	if s := o.Outcome(); s != "" {
		return "; " + s
	}
	return ""
}

// attached watches the task whose PID 1 is pid until it exits (or ctx
// ends), feeding systemd's watchdog meanwhile (o.Watchdog).
func (r *Runtime) attached(ctx context.Context, pid uint32, o ForegroundOptions, notify Notifier) (int, error) {
	wctx, stopWatchdog := context.WithCancel(ctx)
	defer stopWatchdog()
	go r.watchdog(wctx, pid, o.Watchdog, notify, o.Upgrading)
	return r.waitExit(ctx)
}

// followUpgrade tells systemd that the service is reloading, not gone,
// and returns the daemon the upgrade (or its rollback) left, once it let
// go of the start lock: the upgrade holds it from the drain of the old
// daemon to the end of its verification window.
func (r *Runtime) followUpgrade(ctx context.Context, o ForegroundOptions, status string, notify Notifier) (*Started, error) {
	r.progress("the task exited for an upgrade (%s): waiting for it to finish", status)
	// WATCHDOG=1 at once: the drain may have taken most of the interval.
	msg := "RELOADING=1\nWATCHDOG=1\n"
	if us := monotonicUsec(); us > 0 {
		msg += fmt.Sprintf("MONOTONIC_USEC=%d\n", us)
	}
	notify(msg + "STATUS=" + status)
	// The daemon is the upgrade's to judge meanwhile: the watchdog is fed
	// for this process, which is waiting as it should.
	wctx, stopWatchdog := context.WithCancel(ctx)
	defer stopWatchdog()
	go feedWatchdog(wctx, o.Watchdog, notify)
	if err := r.awaitLockFree(ctx, o.Upgrading); err != nil {
		return nil, err
	}
	reattach := o.Reattach
	if reattach == nil {
		reattach = r.Start
	}
	st, err := reattach(ctx)
	if err != nil {
		return nil, fmt.Errorf("attach after the upgrade: %w", err)
	}
	return st, nil
}

// awaitLockFree waits until the start lock is free, or ctx ends. A wait
// that times out is resumed while the upgrade is still going (a rollback
// may hold the lock longer than one start).
func (r *Runtime) awaitLockFree(ctx context.Context, upgrading func() (string, bool)) error {
	for {
		got := make(chan error, 1)
		go func() {
			unlock, err := r.lock()
			if err == nil {
				unlock()
			}
			got <- err
		}()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-got:
			var lt *LockTimeoutError
			if !errors.As(err, &lt) {
				return err
			}
			if _, still := upgrading(); !still {
				return err
			}
		}
	}
}

// feedWatchdog sends WATCHDOG=1 at half the interval until ctx ends.
func feedWatchdog(ctx context.Context, interval time.Duration, notify Notifier) {
	pingWhile(ctx, interval, notify, func() bool { return true })
}

// pingWhile sends WATCHDOG=1 at half the interval, each time ok holds,
// until ctx ends.
func pingWhile(ctx context.Context, interval time.Duration, notify Notifier, ok func() bool) {
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
			if ok() {
				notify("WATCHDOG=1")
			}
		}
	}
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
// task's: only its PID 1's health endpoint counts. A daemon that is not
// live while an upgrade drains it (upgrading, nil = never) is the
// upgrade's to judge: the pings go on.
func (r *Runtime) watchdog(ctx context.Context, pid uint32, interval time.Duration, notify Notifier, upgrading func() (string, bool)) {
	pingWhile(ctx, interval, notify, func() bool {
		return r.live(pid) || upgrading != nil && isUpgrading(upgrading)
	})
}

func isUpgrading(upgrading func() (string, bool)) bool {
	_, ok := upgrading()
	return ok
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
