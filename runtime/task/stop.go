package task

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/a7garden/oxios/internal/termesc"
)

// Stopped is what Stop did.
type Stopped struct {
	WasRunning bool
	ExitCode   uint32
	Took       time.Duration
}

// Stop stops the task (SIGTERM, exit event up to the grace, SIGKILL to
// all) and deletes task and container. Stopping what is not there is not
// an error: stop is idempotent.
func (r *Runtime) Stop(ctx context.Context) (*Stopped, error) {
	return r.stop(ctx, true)
}

// stop is Stop; lock = false when the caller holds the lock (Held).
func (r *Runtime) stop(ctx context.Context, lock bool) (*Stopped, error) {
	ctx = r.ctx(ctx)
	t0 := time.Now()
	if lock {
		unlock, err := r.lock()
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	res := &Stopped{}
	ctr, err := r.load(ctx)
	if err != nil || ctr == nil {
		if err == nil {
			r.releaseRun() // a crash may have left the run dir's tmpfs
		}
		return res, err
	}
	if err := r.stopAndDelete(ctx, ctr, res); err != nil {
		return nil, err
	}
	res.Took = time.Since(t0)
	return res, nil
}

func (r *Runtime) stopAndDelete(ctx context.Context, ctr client.Container, res *Stopped) error {
	task, err := ctr.Task(ctx, nil)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return r.wrapUnavailable(err)
	default:
		st, _ := task.Status(ctx)
		res.WasRunning = st.Status == client.Running || st.Status == client.Paused
		code, err := r.stopTaskCode(ctx, task)
		if err != nil {
			return err
		}
		res.ExitCode = code
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", r.cfg.Container.ID, r.wrapUnavailable(err))
	}
	r.releaseRun()
	return nil
}

// Restart stops the daemon (if it runs), then starts it again.
func (r *Runtime) Restart(ctx context.Context) (*Started, error) {
	if _, err := r.Stop(ctx); err != nil {
		return nil, err
	}
	return r.Start(ctx)
}

// failStart removes the task and container and returns the log lines
// written since mark (the start's beginning).
func (r *Runtime) failStart(ctx context.Context, cause error, mark logMark) error {
	r.remove(ctx)
	var nr *NotReadyError
	if errors.As(cause, &nr) {
		nr.LogPath = r.cfg.LogPath()
		nr.Tail, _ = tailSince(nr.LogPath, mark, 30)
		for i, l := range nr.Tail { // shown to a human: see termesc
			nr.Tail[i] = termesc.String(l)
		}
		return nr
	}
	return cause
}

// remove kills and deletes the task and container, whatever state it is in.
func (r *Runtime) remove(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	ctr, err := r.load(ctx)
	if err != nil || ctr == nil {
		return
	}
	if task, err := ctr.Task(ctx, nil); err == nil {
		r.stopTask(ctx, task)
	}
	ctr.Delete(ctx, client.WithSnapshotCleanup)
	r.releaseRun()
}

// stopTask: SIGTERM (oxios-init rewrites it for the daemon), wait for the
// exit event up to the grace, then SIGKILL every process, then delete.
func (r *Runtime) stopTask(ctx context.Context, task client.Task) error {
	_, err := r.stopTaskCode(ctx, task)
	return err
}

// stopTaskCode is stopTask returning the task's exit code. A task that
// never started (created) or already exited has no exit event coming: it
// is deleted at once.
func (r *Runtime) stopTaskCode(ctx context.Context, task client.Task) (uint32, error) {
	if st, err := task.Status(ctx); err == nil && (st.Status == client.Created || st.Status == client.Stopped) {
		es, err := task.Delete(ctx, client.WithProcessKill)
		if err != nil && !errdefs.IsNotFound(err) {
			return 0, fmt.Errorf("delete task %s: %w", r.cfg.Container.ID, r.wrapUnavailable(err))
		}
		if es != nil {
			return es.ExitCode(), nil
		}
		return st.ExitStatus, nil
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return 0, r.wrapUnavailable(err)
	}
	if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsFailedPrecondition(err) {
		return 0, fmt.Errorf("SIGTERM task %s: %w", r.cfg.Container.ID, r.wrapUnavailable(err))
	}
	es, err := r.awaitExit(ctx, task, exitCh)
	if err != nil {
		return 0, err
	}
	// No WithProcessKill: the exit event says PID 1 is gone, and with it
	// (own PID namespace) every process of the task; the extra runc kill
	// would cost 10-15 ms per stop.
	code := es.ExitCode()
	var opts []client.ProcessDeleteOpts
	if es.Error() != nil || code == unknownExit {
		opts = append(opts, client.WithProcessKill) // no exit event came
		code = 128 + uint32(syscall.SIGKILL)
	}
	if _, err := task.Delete(ctx, opts...); err != nil && !errdefs.IsNotFound(err) {
		return 0, fmt.Errorf("delete task %s: %w", r.cfg.Container.ID, r.wrapUnavailable(err))
	}
	return code, nil
}

// awaitExit waits for the exit event up to the grace, then SIGKILLs every
// process of the task and waits again (bounded: a task stuck in D state
// must not hang stop forever; Delete with WithProcessKill follows).
func (r *Runtime) awaitExit(ctx context.Context, task client.Task, exitCh <-chan client.ExitStatus) (client.ExitStatus, error) {
	select {
	case es := <-exitCh:
		return es, nil
	case <-time.After(r.hostGrace()):
	case <-ctx.Done():
		return client.ExitStatus{}, ctx.Err()
	}
	r.progress("%s did not exit within %v: SIGKILL to every process", r.cfg.Container.ID, r.hostGrace())
	task.Kill(ctx, syscall.SIGKILL, client.WithKillAll)
	select {
	case es := <-exitCh:
		return es, nil
	case <-time.After(10 * time.Second):
		return *client.NewExitStatus(unknownExit, time.Now(), nil), nil
	case <-ctx.Done():
		return client.ExitStatus{}, ctx.Err()
	}
}

// hostGrace outlasts oxios-init's own grace (the same stop_timeout), so
// that oxios-init gets to run its TERM, grace, KILL sequence itself.
func (r *Runtime) hostGrace() time.Duration { return r.cfg.StopGrace() + 2*time.Second }
