package task

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
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
	ctx = r.ctx(ctx)
	t0 := time.Now()
	unlock, err := r.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &Stopped{}
	ctr, err := r.load(ctx)
	if err != nil || ctr == nil {
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
