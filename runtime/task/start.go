package task

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/opencontainers/image-spec/identity"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/logdriver"
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
// task and container are gone; Tail holds the last lines of the log.
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
// The image lookup and the spec (which depend on the config and the image
// only) run while the container and its task are inspected, and the
// lease for the new snapshot is taken while they finish: every containerd
// round trip saved here is start latency (make bench-runtime).
func (r *Runtime) Start(ctx context.Context) (*Started, error) {
	ctx = r.ctx(ctx)
	res := &Started{URL: r.cfg.URL(), LogPath: r.cfg.LogPath()}
	tr := newTrace(res)
	unlock, err := r.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	tr.step("lock")
	// Joined before Start returns (the CLI exits right after): nothing
	// runs on against a closed connection.
	var bg sync.WaitGroup
	defer bg.Wait()
	actx, cancel := context.WithCancel(ctx)
	ahead := r.lookAhead(actx)
	defer func() { cancel(); ahead.get() }()
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
	var lease *future[leases.Lease]
	release := func() {}
	if ctr == nil {
		lease = r.newLease(ctx)
		release = sync.OnceFunc(func() { r.releaseLease(ctx, lease, &bg) })
		defer release()
	}
	img, d, err := r.imageAndSpec(ctx, ahead)
	if err != nil {
		return nil, err
	}
	tr.step("image")
	ctr, rootfs, err := r.ensureContainer(ctx, ctr, img, d, res, lease)
	if err != nil {
		return nil, err
	}
	tr.step("container")
	l, err := r.startTask(ctx, ctr, d, rootfs)
	release() // the container holds its snapshot now; this overlaps the wait
	if err != nil {
		r.remove(ctx, ctr)
		return nil, err
	}
	tr.step("task")
	if err := r.waitReady(ctx, l.exitCh, l.notify); err != nil {
		return nil, r.failStart(ctx, ctr, err)
	}
	tr.step("ready")
	l.awaitLabels()
	res.PID = l.pid
	return res, nil
}

// launched is a task startTask started.
type launched struct {
	pid    uint32
	exitCh <-chan client.ExitStatus
	// notify is the sd_notify socket, bound before the task existed (nil
	// when oxios-init does not publish readiness); waitReady closes it.
	notify *net.UnixConn
	// labelled is closed once the started-at label is written.
	labelled <-chan struct{}
}

// awaitLabels joins the started-at label update (long done by now): a CLI
// that exits right after Start must not lose it.
func (l *launched) awaitLabels() {
	select {
	case <-l.labelled:
	case <-time.After(5 * time.Second):
	}
}

// adoptOrClean handles what an earlier run left: a running task is adopted
// (when its config still matches) and waited for; an exited or never
// started task is deleted, keeping the container for ensureContainer.
func (r *Runtime) adoptOrClean(ctx context.Context, ctr client.Container, res *Started, ahead *future[*planned]) (client.Container, error) {
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
func (r *Runtime) adopt(ctx context.Context, ctr client.Container, task client.Task, res *Started, ahead *future[*planned]) (client.Container, error) {
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
	if err := r.waitReady(ctx, exitCh, nil); err != nil {
		return nil, r.failStart(ctx, ctr, err)
	}
	res.Adopted, res.PID = true, task.Pid()
	return ctr, nil
}

// changed compares the running container's hash label with the config.
// An image that is gone from containerd cannot be compared: keep running.
func (r *Runtime) changed(ctx context.Context, ctr client.Container, ahead *future[*planned]) (bool, error) {
	labels, err := ctr.Labels(ctx)
	if err != nil {
		return false, r.wrapUnavailable(err)
	}
	p, err := ahead.get()
	if err != nil || p == nil {
		return false, err
	}
	return labels[LabelHash] != p.d.hash, nil
}

// ensureContainer reuses a container with the current hash and replaces
// any other. It returns the new container's rootfs mounts (nil for a
// reused one). lease, when not nil, is the lease to create the snapshot
// under (else client.NewContainer takes its own).
func (r *Runtime) ensureContainer(ctx context.Context, ctr client.Container, img client.Image, d *desired, res *Started, lease *future[leases.Lease]) (client.Container, []mount.Mount, error) {
	if ctr != nil {
		labels, err := ctr.Labels(ctx)
		if err == nil && labels[LabelHash] == d.hash {
			return ctr, nil, nil
		}
		res.Recreated = true
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			return nil, nil, fmt.Errorf("delete outdated container %s: %w", r.cfg.Container.ID, err)
		}
	}
	if err := r.prepareDirs(img); err != nil {
		return nil, nil, err
	}
	if lease != nil {
		if l, err := lease.get(); err == nil {
			ctx = leases.WithLease(ctx, l.ID)
		}
	}
	return r.createContainer(ctx, img, d)
}

func (r *Runtime) createContainer(ctx context.Context, img client.Image, d *desired) (client.Container, []mount.Mount, error) {
	id, sn := r.cfg.Container.ID, r.cfg.Containerd.Snapshotter
	snap := id + "-rootfs"
	ic, err := r.imageSpec(ctx, img)
	if err != nil {
		return nil, nil, fmt.Errorf("image %s config: %w", img.Name(), err)
	}
	parent := identity.ChainID(ic.RootFS.DiffIDs).String()
	var rootfs []mount.Mount
	ctr, err := r.newContainer(ctx, img, d, snap, parent, &rootfs)
	if errdefs.IsAlreadyExists(err) {
		// A crash between snapshot and container creation leaves the
		// snapshot: remove it and try once more.
		if rerr := r.client.SnapshotService(sn).Remove(ctx, snap); rerr != nil && !errdefs.IsNotFound(rerr) {
			return nil, nil, fmt.Errorf("remove leftover snapshot %s: %w", snap, rerr)
		}
		ctr, err = r.newContainer(ctx, img, d, snap, parent, &rootfs)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("create container %s: %w", id, r.wrapUnavailable(err))
	}
	return ctr, rootfs, nil
}

func (r *Runtime) newContainer(ctx context.Context, img client.Image, d *desired, snap, parent string, rootfs *[]mount.Mount) (client.Container, error) {
	return r.client.NewContainer(ctx, r.cfg.Container.ID,
		client.WithImage(img),
		withNewSnapshot(r.cfg.Containerd.Snapshotter, snap, parent, rootfs),
		r.runtimeOpt(),
		withSpec(d),
		client.WithContainerLabels(map[string]string{
			LabelHash: d.hash,
			LabelPort: strconv.Itoa(r.cfg.Container.Port),
		}),
	)
}

// withNewSnapshot is client.WithNewSnapshot without its snapshotter
// capabilities query, a round trip per start that matters only for
// snapshots with UID/GID remapping labels, which oxios never sets. The
// mounts Prepare returns go to *rootfs, for the task.
func withNewSnapshot(sn, key, parent string, rootfs *[]mount.Mount) client.NewContainerOpts {
	return func(ctx context.Context, c *client.Client, ctr *containers.Container) error {
		ms, err := c.SnapshotService(sn).Prepare(ctx, key, parent)
		if err != nil {
			return err
		}
		ctr.Snapshotter, ctr.SnapshotKey, *rootfs = sn, key, ms
		return nil
	}
}

// newLease is the lease the new container's snapshot is prepared under,
// so that containerd's garbage collector cannot remove it before the
// container refers to it (client.NewContainer would otherwise create and
// delete one itself, two round trips on the start path). It is created
// while the image is looked up and released once the task runs.
func (r *Runtime) newLease(ctx context.Context) *future[leases.Lease] {
	return goFuture(func() (leases.Lease, error) {
		return r.client.LeasesService().Create(ctx, leases.WithRandomID(), leases.WithExpiration(24*time.Hour))
	})
}

// releaseLease deletes the lease on its own goroutine, joined by bg. A
// lease that a crash leaves behind expires after 24 hours.
func (r *Runtime) releaseLease(ctx context.Context, lease *future[leases.Lease], bg *sync.WaitGroup) {
	bg.Add(1)
	go func() {
		defer bg.Done()
		if l, err := lease.get(); err == nil {
			r.client.LeasesService().Delete(context.WithoutCancel(ctx), l)
		}
	}()
}

// startTask creates the task with the log driver as its IO, waits before
// starting (so an instant exit is never missed), and starts it. It talks
// to the task service directly: the client's Task object costs a Get
// round trip through the shim (about 1 ms here) and adds nothing Start
// needs. On an error the caller removes task and container.
func (r *Runtime) startTask(ctx context.Context, ctr client.Container, d *desired, rootfs []mount.Mount) (*launched, error) {
	if err := r.clearReady(); err != nil {
		return nil, err
	}
	l := &launched{}
	if r.supervised() {
		// Bound before the task exists, so oxios-init's READY=1 has a
		// receiver from its first instant.
		n, err := r.listenNotify()
		if err != nil {
			return nil, err
		}
		l.notify = n
	}
	fail := func(step string, err error) (*launched, error) {
		if l.notify != nil {
			l.notify.Close()
		}
		return nil, fmt.Errorf("%s task %s: %w", step, r.cfg.Container.ID, r.wrapUnavailable(err))
	}
	lo := logdriver.Options{Path: r.cfg.LogPath(), MaxSize: int64(r.cfg.Logs.MaxSize), MaxFiles: r.cfg.Logs.MaxFiles, Report: r.logErrorPath()}
	os.Remove(lo.Report)
	pid, err := r.newTask(ctx, ctr, d, rootfs, cio.BinaryIO(r.logBin, lo.Args()))
	if err != nil {
		return fail("create", err)
	}
	l.pid = pid
	l.exitCh = r.waitTask(ctx)
	if _, err := r.client.TaskService().Start(ctx, &tasks.StartRequest{ContainerID: ctr.ID()}); err != nil {
		return fail("start", errgrpc.ToNative(err))
	}
	l.labelled = r.labelStarted(ctx, ctr)
	return l, nil
}

// newTask is ctr.NewTask with what Start already knows: the client's
// NewTask reads the container record three times (and unmarshals its
// spec) and asks the snapshotter for the mounts before it asks for the
// task, about 1.3 ms of round trips here. rootfs is the new snapshot's
// mounts, from Prepare; nil (a reused container) asks the snapshotter.
func (r *Runtime) newTask(ctx context.Context, ctr client.Container, d *desired, rootfs []mount.Mount, ioc cio.Creator) (uint32, error) {
	if rootfs == nil {
		info, err := ctr.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			return 0, err
		}
		if rootfs, err = r.client.SnapshotService(info.Snapshotter).Mounts(ctx, info.SnapshotKey); err != nil {
			return 0, err
		}
	}
	pio, err := ioc(ctr.ID())
	if err != nil {
		return 0, err
	}
	c := pio.Config()
	req := &tasks.CreateTaskRequest{ContainerID: ctr.ID(), Terminal: c.Terminal, Stdin: c.Stdin, Stdout: c.Stdout, Stderr: c.Stderr}
	for _, m := range rootfs {
		opts := m.Options
		if d.spec.Linux != nil && d.spec.Linux.MountLabel != "" {
			// As the client does: the SELinux label goes on the rootfs.
			opts = append(slices.Clone(opts), fmt.Sprintf("context=%q", d.spec.Linux.MountLabel))
		}
		req.Rootfs = append(req.Rootfs, &types.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: opts})
	}
	resp, err := r.client.TaskService().Create(ctx, req)
	if err != nil {
		return 0, errgrpc.ToNative(err)
	}
	return resp.Pid, nil
}

// waitTask is client.Task.Wait for Start's task: the exit status arrives
// on the channel (UnknownExitStatus and the error when it cannot be had).
func (r *Runtime) waitTask(ctx context.Context) <-chan client.ExitStatus {
	c := make(chan client.ExitStatus, 1)
	go func() {
		resp, err := r.client.TaskService().Wait(ctx, &tasks.WaitRequest{ContainerID: r.cfg.Container.ID})
		if err != nil {
			c <- *client.NewExitStatus(client.UnknownExitStatus, time.Time{}, errgrpc.ToNative(err))
			return
		}
		c <- *client.NewExitStatus(resp.ExitStatus, resp.ExitedAt.AsTime(), nil)
	}()
	return c
}

// labelStarted records the start time (informational: status) off the
// path to readiness; the channel is closed once it is written.
func (r *Runtime) labelStarted(ctx context.Context, ctr client.Container) <-chan struct{} {
	startedAt := time.Now().UTC().Format(time.RFC3339Nano)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctr.SetLabels(context.WithoutCancel(ctx), map[string]string{LabelStartedAt: startedAt})
	}()
	return done
}

// failStart removes the task and container and returns the log tail.
func (r *Runtime) failStart(ctx context.Context, ctr client.Container, cause error) error {
	r.remove(ctx, ctr)
	var nr *NotReadyError
	if errors.As(cause, &nr) {
		nr.LogPath = r.cfg.LogPath()
		nr.Tail, _ = TailLines(nr.LogPath, 30)
		return nr
	}
	return cause
}

// remove kills and deletes the task and container, whatever state it is in.
func (r *Runtime) remove(ctx context.Context, ctr client.Container) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if task, err := ctr.Task(ctx, nil); err == nil {
		r.stopTask(ctx, task)
	}
	ctr.Delete(ctx, client.WithSnapshotCleanup)
}

// prepareDirs creates the data, log and run directories. The data and run
// directories are handed to the container's user when oxios creates them;
// an existing data directory (say ~/.oxios) is never chowned.
func (r *Runtime) prepareDirs(img client.Image) error {
	uid, gid := r.containerUser(img)
	k := r.cfg.Container
	if err := mkdirOwned(k.DataDir, uid, gid, false); err != nil {
		return err
	}
	if err := mkdirOwned(r.runDir(), uid, gid, true); err != nil {
		return err
	}
	if err := os.MkdirAll(k.LogDir, 0o755); err != nil {
		return fmt.Errorf("log dir %s: %w", k.LogDir, err)
	}
	return nil
}

func mkdirOwned(dir string, uid, gid int, always bool) error {
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if (always || os.IsNotExist(statErr)) && uid >= 0 && os.Geteuid() == 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			return fmt.Errorf("chown %s to %d:%d: %w", dir, uid, gid, err)
		}
	}
	return nil
}

// containerUser is the numeric user the task runs as (-1 when unknown).
func (r *Runtime) containerUser(img client.Image) (int, int) {
	u := r.cfg.Container.User
	if u == "" {
		if ic, err := r.imageSpec(context.Background(), img); err == nil {
			u = ic.Config.User
		}
	}
	uid, gid, _ := config.ParseUser(u)
	return uid, gid
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

// unknownExit marks an exit that was never reported (awaitExit gave up).
const unknownExit = 255 + 137

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
