// The container half of the start path: the container record and its
// rootfs snapshot, reused when the spec hash matches, replaced otherwise.

package task

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

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
		ID: r.cfg.Container.ID,
		Labels: map[string]string{LabelHash: d.hash, LabelPort: strconv.Itoa(r.cfg.Container.Port), LabelNotifyToken: d.token,
			LabelImageDigest: img.Target().Digest.String()},
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
