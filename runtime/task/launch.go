// The task half of the start path: the task is created, waited on and
// started through containerd's task service, under the client's
// Container.NewTask and Task.Start (see startTask for why).

package task

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/logdriver"
)

// startTask creates the task with the log driver as its IO, waits before
// starting (so an instant exit is never missed), and starts it. It talks
// to the task service directly: the client's Task object costs a Get
// round trip through the shim and adds nothing Start needs. On an error
// the caller removes task and container.
func (r *Runtime) startTask(ctx context.Context, d *desired, rootfs []mount.Mount) (*launched, error) {
	// Every start, not only when the container is created: after a power
	// cut or an admin's mkdir the record survives while the directories
	// changed.
	uid, gid := int(d.spec.Process.User.UID), int(d.spec.Process.User.GID)
	if err := r.prepareDirs(uid, gid); err != nil {
		return nil, err
	}
	if err := r.prepareRun(uid, gid); err != nil {
		return nil, err
	}
	// The shim runs the log driver as root: one that another user can
	// replace is refused, as a config file is (config.CheckTrusted).
	if err := config.CheckTrusted(r.logBin); err != nil {
		return nil, fmt.Errorf("log driver %s: %w", r.logBin, err)
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
	l.logFrom = markLog(r.cfg.LogPath())
	lo := logdriver.Options{Driver: r.cfg.Logs.Driver, JournalSocket: r.cfg.Logs.JournalSocket, Path: r.cfg.LogPath(), MaxSize: int64(r.cfg.Logs.MaxSize), MaxFiles: r.cfg.Logs.MaxFiles, Report: r.logErrorPath()}
	if err := lo.Check(); err != nil {
		return fail("create", err)
	}
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
// the task: round trips Start does not need. rootfs is the container's
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

// launched is a task startTask started.
type launched struct {
	pid    uint32
	exitCh <-chan client.ExitStatus
	// logFrom is where the log ended before this task wrote to it.
	logFrom logMark
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
