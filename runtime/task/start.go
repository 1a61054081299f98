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
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

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
// Every containerd round trip on the way to the task is start latency
// (make bench-runtime), so independent ones overlap: the image lookup and
// the spec (config and image only) run while the container and its task
// are inspected, and a new container's snapshot is prepared as soon as
// the image's rootfs is known, while the spec is still being built.
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
		return nil, r.failStart(ctx, err)
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
		return nil, r.failStart(ctx, err)
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

// ensureContainer reuses a container with the current hash and replaces
// any other. It returns the container's rootfs mounts, and whether it
// created the container. snap, when not nil, is the new container's
// snapshot, already being prepared (prepareAhead).
func (r *Runtime) ensureContainer(ctx context.Context, ctr client.Container, img client.Image, d *desired, res *Started, snap *future[[]mount.Mount]) ([]mount.Mount, bool, error) {
	if ctr != nil {
		// The record LoadContainer read: no second read of it.
		info, err := ctr.Info(ctx, client.WithoutRefreshedMetadata)
		if err == nil && info.Labels[LabelHash] == d.hash {
			ms, err := r.client.SnapshotService(info.Snapshotter).Mounts(ctx, info.SnapshotKey)
			if err == nil {
				return ms, false, nil
			}
			if !errdefs.IsNotFound(err) {
				return nil, false, fmt.Errorf("rootfs of container %s: %w", r.cfg.Container.ID, r.wrapUnavailable(err))
			}
			// Its snapshot is gone (removed by hand, or a crash in the
			// middle of a delete): recreate it rather than fail.
		}
		res.Recreated = true
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			return nil, false, fmt.Errorf("delete outdated container %s: %w", r.cfg.Container.ID, err)
		}
	}
	if err := r.prepareDirs(img); err != nil {
		r.dropSnapshot(ctx, snap)
		return nil, false, err
	}
	ms, err := r.createContainer(ctx, img, d, snap)
	return ms, err == nil, err
}

// createContainer writes the container record (ContainerService.Create:
// client.NewContainer would take a lease around it, two more writes to
// containerd's database) on the snapshot snap prepares, or on one it
// prepares now (snap == nil).
func (r *Runtime) createContainer(ctx context.Context, img client.Image, d *desired, snap *future[[]mount.Mount]) ([]mount.Mount, error) {
	var ms []mount.Mount
	var err error
	if snap != nil {
		ms, err = snap.get()
	} else {
		var ic ocispec.Image
		if ic, err = r.imageSpec(ctx, img); err != nil {
			return nil, fmt.Errorf("image %s config: %w", img.Name(), err)
		}
		ms, err = r.prepareSnapshot(ctx, identity.ChainID(ic.RootFS.DiffIDs).String())
	}
	if err != nil {
		return nil, fmt.Errorf("prepare the rootfs snapshot %s: %w", r.snapshotKey(), r.wrapUnavailable(err))
	}
	rt, err := r.runtimeInfo()
	var spec typeurl.Any
	if err == nil {
		spec, err = d.record()
	}
	if err != nil {
		r.removeSnapshot(ctx)
		return nil, err
	}
	rec := containers.Container{
		ID:          r.cfg.Container.ID,
		Labels:      map[string]string{LabelHash: d.hash, LabelPort: strconv.Itoa(r.cfg.Container.Port), LabelNotifyToken: d.token},
		Image:       img.Name(),
		Runtime:     rt,
		Spec:        spec,
		Snapshotter: r.cfg.Containerd.Snapshotter,
		SnapshotKey: r.snapshotKey(),
	}
	if _, err := r.client.ContainerService().Create(ctx, rec); err != nil {
		r.removeSnapshot(ctx)
		return nil, fmt.Errorf("create container %s: %w", rec.ID, r.wrapUnavailable(err))
	}
	return ms, nil
}

// snapshotKey names the container's rootfs snapshot.
func (r *Runtime) snapshotKey() string { return r.cfg.Container.ID + "-rootfs" }

// gcRoot is the label that keeps a new snapshot from containerd's garbage
// collector between Prepare and the container record that refers to it
// (what client.NewContainer's lease is for). It is removed once the task
// runs (unpinSnapshot); should a crash leave it, the snapshot still goes
// with the container (stop deletes it explicitly), and a snapshot left
// without a container is removed by the next start.
const gcRoot = "containerd.io/gc.root"

// prepareSnapshot prepares the container's rootfs snapshot on parent (the
// image's chain ID), pinned with gcRoot. It is client.WithNewSnapshot
// without the snapshotter capabilities query, which matters only for
// UID/GID remapping labels (oxios sets none).
func (r *Runtime) prepareSnapshot(ctx context.Context, parent string) ([]mount.Mount, error) {
	s, key := r.client.SnapshotService(r.cfg.Containerd.Snapshotter), r.snapshotKey()
	pin := snapshots.WithLabels(map[string]string{gcRoot: time.Now().UTC().Format(time.RFC3339)})
	ms, err := s.Prepare(ctx, key, parent, pin)
	if errdefs.IsAlreadyExists(err) {
		// A crash between snapshot and container creation leaves the
		// snapshot: remove it and try once more.
		if rerr := s.Remove(ctx, key); rerr != nil && !errdefs.IsNotFound(rerr) {
			return nil, fmt.Errorf("remove leftover snapshot %s: %w", key, rerr)
		}
		ms, err = s.Prepare(ctx, key, parent, pin)
	}
	return ms, err
}

// prepareAhead starts preparing a new container's snapshot as soon as
// lookAhead knows the image's rootfs. nil when the image must first be
// imported, pulled or unpacked (or pulled again: image.pull = "always").
func (r *Runtime) prepareAhead(ctx context.Context, a *ahead) *future[[]mount.Mount] {
	if r.cfg.Image.Pull == "always" {
		return nil
	}
	f, err := a.facts.get()
	if err != nil || f == nil || !f.unpacked {
		return nil
	}
	return goFuture(func() ([]mount.Mount, error) { return r.prepareSnapshot(ctx, f.chain) })
}

// dropSnapshot removes the snapshot snap prepared, when no container was
// created on it.
func (r *Runtime) dropSnapshot(ctx context.Context, snap *future[[]mount.Mount]) {
	if snap == nil {
		return
	}
	if _, err := snap.get(); err == nil {
		r.removeSnapshot(ctx)
	}
}

func (r *Runtime) removeSnapshot(ctx context.Context) {
	r.client.SnapshotService(r.cfg.Containerd.Snapshotter).Remove(context.WithoutCancel(ctx), r.snapshotKey())
}

// unpinSnapshot removes gcRoot from the new container's snapshot on its
// own goroutine (joined by bg), so that it overlaps the readiness wait.
func (r *Runtime) unpinSnapshot(ctx context.Context, bg *sync.WaitGroup) {
	bg.Add(1)
	go func() {
		defer bg.Done()
		s := r.client.SnapshotService(r.cfg.Containerd.Snapshotter)
		s.Update(context.WithoutCancel(ctx), snapshots.Info{Name: r.snapshotKey()}, "labels."+gcRoot)
	}()
}

// startTask creates the task with the log driver as its IO, waits before
// starting (so an instant exit is never missed), and starts it. It talks
// to the task service directly: the client's Task object costs a Get
// round trip through the shim (about 1 ms here) and adds nothing Start
// needs. On an error the caller removes task and container.
func (r *Runtime) startTask(ctx context.Context, d *desired, rootfs []mount.Mount) (*launched, error) {
	if err := r.prepareRun(int(d.spec.Process.User.UID), int(d.spec.Process.User.GID)); err != nil {
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
	pid, err := r.newTask(ctx, d, rootfs, cio.BinaryIO(r.logBin, lo.Args()))
	if err != nil {
		return fail("create", err)
	}
	l.pid = pid
	l.exitCh = r.waitTask(ctx)
	if _, err := r.client.TaskService().Start(ctx, &tasks.StartRequest{ContainerID: r.cfg.Container.ID}); err != nil {
		return fail("start", errgrpc.ToNative(err))
	}
	l.labelled = r.labelStarted(ctx)
	return l, nil
}

// newTask is container.NewTask with what Start already knows: the
// client's NewTask reads the container record three times (and unmarshals
// its spec) and asks the snapshotter for the mounts before it asks for
// the task, about 1.3 ms of round trips here. rootfs is the container's
// snapshot mounts (ensureContainer).
func (r *Runtime) newTask(ctx context.Context, d *desired, rootfs []mount.Mount, ioc cio.Creator) (uint32, error) {
	id := r.cfg.Container.ID
	pio, err := ioc(id)
	if err != nil {
		return 0, err
	}
	c := pio.Config()
	req := &tasks.CreateTaskRequest{ContainerID: id, Terminal: c.Terminal, Stdin: c.Stdin, Stdout: c.Stdout, Stderr: c.Stderr}
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
func (r *Runtime) labelStarted(ctx context.Context) <-chan struct{} {
	rec := containers.Container{ID: r.cfg.Container.ID, Labels: map[string]string{LabelStartedAt: time.Now().UTC().Format(time.RFC3339Nano)}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.client.ContainerService().Update(context.WithoutCancel(ctx), rec, "labels."+LabelStartedAt)
	}()
	return done
}

// failStart removes the task and container and returns the log tail.
func (r *Runtime) failStart(ctx context.Context, cause error) error {
	r.remove(ctx)
	var nr *NotReadyError
	if errors.As(cause, &nr) {
		nr.LogPath = r.cfg.LogPath()
		nr.Tail, _ = TailLines(nr.LogPath, 30)
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

// prepareDirs creates the data and log directories. The data directory
// is handed to the container's user when oxios creates it; an existing
// one (say ~/.oxios) is never chowned. The run directory is laid out for
// each task (prepareRun).
func (r *Runtime) prepareDirs(img client.Image) error {
	uid, gid := r.containerUser(img)
	k := r.cfg.Container
	if err := mkdirOwned(k.DataDir, uid, gid); err != nil {
		return err
	}
	if err := os.MkdirAll(k.LogDir, 0o755); err != nil {
		return fmt.Errorf("log dir %s: %w", k.LogDir, err)
	}
	return nil
}

// mkdirOwned creates dir and, when it is new, hands it to uid:gid. By
// path: no container has it mounted yet, and its parent is the host's.
func mkdirOwned(dir string, uid, gid int) error {
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if os.IsNotExist(statErr) && uid >= 0 && os.Geteuid() == 0 {
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
