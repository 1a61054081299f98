package task

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
)

// Started is what Start did.
type Started struct {
	PID       uint32
	URL       string
	LogPath   string
	Adopted   bool   // it was already running and ready: nothing created
	Cleaned   string // a leftover removed on the way ("" = none)
	Recreated bool   // the container was rebuilt (config or image changed)
	Ready     time.Duration
	// Steps is how long each step took (for `--verbose` and benchmarks).
	Steps []Step
}

// Step is one named step of Start and its duration.
type Step struct {
	Name string
	Took time.Duration
}

type trace struct {
	res  *Started
	t0   time.Time
	last time.Time
}

func newTrace(res *Started) *trace {
	now := time.Now()
	return &trace{res: res, t0: now, last: now}
}

func (t *trace) step(name string) {
	now := time.Now()
	t.res.Steps = append(t.res.Steps, Step{name, now.Sub(t.last)})
	t.res.Ready = now.Sub(t.t0)
	t.last = now
}

// NotReadyError is a start that failed after the task was created. The
// task and container are gone; Tail holds the last lines of the log,
// control characters escaped (termesc): they are shown to a human.
type NotReadyError struct {
	Reason  string
	LogPath string
	Tail    []string
}

func (e *NotReadyError) Error() string { return "daemon did not become ready: " + e.Reason }
func (e *NotReadyError) Unwrap() error { return ErrNotReady }

// Start runs the daemon unless it already runs, and returns once it is
// ready. It holds the host start lock throughout, so parallel starts end
// with one task.
//
// Every containerd round trip on the way to the task is start latency
// (make bench-runtime), so independent ones overlap: the image lookup and
// the spec (config and image only) run while the container and its task
// are inspected, and a new container's snapshot is prepared as soon as
// the image's rootfs is known, while the spec is still being built.
func (r *Runtime) Start(ctx context.Context) (*Started, error) {
	return r.start(ctx, true)
}

// start is Start; lock = false when the caller holds the lock (Held).
func (r *Runtime) start(ctx context.Context, lock bool) (*Started, error) {
	ctx = r.ctx(ctx)
	res := &Started{URL: r.cfg.URL(), LogPath: r.cfg.LogPath()}
	tr := newTrace(res)
	if lock {
		unlock, err := r.lock()
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	tr.step("lock")
	// Joined before Start returns (the CLI exits right after): nothing
	// runs on against a closed connection.
	var bg sync.WaitGroup
	defer bg.Wait()
	actx, cancel := context.WithCancel(ctx)
	ahead := r.lookAhead(actx)
	defer func() { cancel(); ahead.wait() }()
	ctr, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	if ctr, err = r.adoptOrClean(ctx, ctr, res, ahead); err != nil || res.Adopted {
		return res, err
	}
	tr.step("inspect")
	if err := r.checkLegacy(); err != nil {
		return nil, err
	}
	if err := r.guardPort(); err != nil {
		return nil, err
	}
	tr.step("guards")
	var snap *future[[]mount.Mount]
	if ctr == nil {
		snap = r.prepareAhead(ctx, ahead)
	}
	img, d, err := r.imageAndSpec(ctx, ahead)
	if err != nil {
		r.dropSnapshot(ctx, snap)
		return nil, err
	}
	tr.step("image")
	rootfs, created, err := r.ensureContainer(ctx, ctr, img, d, res, snap)
	if err != nil {
		return nil, err
	}
	tr.step("container")
	l, err := r.startTask(ctx, d, rootfs)
	if created {
		r.unpinSnapshot(ctx, &bg) // the container holds it now; overlaps the wait
	}
	if err != nil {
		r.remove(ctx)
		return nil, err
	}
	tr.step("task")
	if err := r.waitReady(ctx, l.pid, l.exitCh, l.notify); err != nil {
		return nil, r.failStart(ctx, err, l.logFrom)
	}
	tr.step("ready")
	l.awaitLabels()
	res.PID = l.pid
	return res, nil
}

// adoptOrClean handles what an earlier run left: a running task is adopted
// (when its config still matches) and waited for; an exited or never
// started task is deleted, keeping the container for ensureContainer.
func (r *Runtime) adoptOrClean(ctx context.Context, ctr client.Container, res *Started, ahead *ahead) (client.Container, error) {
	if ctr == nil {
		return nil, nil
	}
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return ctr, nil
	}
	if err != nil {
		return nil, r.wrapUnavailable(err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return nil, r.wrapUnavailable(err)
	}
	if st.Status == client.Running || st.Status == client.Paused {
		return r.adopt(ctx, ctr, task, res, ahead)
	}
	if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("delete leftover task %s: %w", r.cfg.Container.ID, err)
	}
	res.Cleaned = fmt.Sprintf("removed the %s task left by an earlier run (exit code %d)", st.Status, st.ExitStatus)
	return ctr, nil
}

// adopt: a running task whose container matches the config is the daemon;
// wait for it to be ready instead of starting a second one. One that no
// longer matches is stopped so the caller recreates it.
func (r *Runtime) adopt(ctx context.Context, ctr client.Container, task client.Task, res *Started, ahead *ahead) (client.Container, error) {
	if changed, err := r.changed(ctx, ctr, ahead); err != nil {
		return nil, err
	} else if changed {
		r.progress("config or image changed: replacing the running container %s", r.cfg.Container.ID)
		if err := r.stopTask(ctx, task); err != nil {
			return nil, err
		}
		return ctr, nil
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return nil, r.wrapUnavailable(err)
	}
	if err := r.waitReady(ctx, task.Pid(), exitCh, nil); err != nil {
		return nil, r.failStart(ctx, err, logMark{})
	}
	res.Adopted, res.PID = true, task.Pid()
	return ctr, nil
}

// changed compares the running container's hash label with the config.
// An image that is gone from containerd cannot be compared: keep running.
func (r *Runtime) changed(ctx context.Context, ctr client.Container, ahead *ahead) (bool, error) {
	labels, err := ctr.Labels(ctx)
	if err != nil {
		return false, r.wrapUnavailable(err)
	}
	d, err := ahead.plan.get()
	if err != nil || d == nil {
		return false, err
	}
	return labels[LabelHash] != d.hash, nil
}

// prepareDirs creates the data and log directories. The data directory
// is handed to the container's user (uid:gid) when oxios creates it; an
// existing one (say ~/.oxios) is never chowned, and must be writable by
// that user (checkDataDir). The run directory is laid out for each task
// (prepareRun).
func (r *Runtime) prepareDirs(uid, gid int) error {
	k := r.cfg.Container
	if err := mkdirOwned(k.DataDir, uid, gid); err != nil {
		return err
	}
	if err := checkDataDir(k.DataDir, uid, gid); err != nil {
		return err
	}
	if err := os.MkdirAll(k.LogDir, 0o755); err != nil {
		return fmt.Errorf("log dir %s: %w", k.LogDir, err)
	}
	return nil
}

// unknownExit marks an exit that was never reported (awaitExit gave up).
const unknownExit = 255 + 137
