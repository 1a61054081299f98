//go:build linux

package task

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
)

// Start writes the container record itself (no client.NewContainer): it
// must hold what the client would have written, and the snapshot's
// garbage-collection pin must be gone once Start returns.
func TestContainerRecordAndSnapshot(t *testing.T) {
	e := newEnv(t)
	r, ctx, img := e.connectWithImage(t)
	// A pinned snapshot without its container, as a crash leaves it:
	// Start removes it and prepares it again.
	if _, err := r.prepareSnapshot(ctx, imgChainID(t, ctx, img)); err != nil {
		t.Fatal(err)
	}
	if sn, err := r.client.SnapshotService(e.cfg.Containerd.Snapshotter).Stat(ctx, r.snapshotKey()); err != nil || sn.Labels[gcRoot] == "" {
		t.Fatalf("prepared snapshot not pinned: %+v %v", sn, err)
	}
	if _, err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ctr, err := r.client.LoadContainer(ctx, e.cfg.Container.ID)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ctr.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Image != e.cfg.Image.Ref || info.Runtime.Name != e.cfg.Containerd.Runtime ||
		info.Snapshotter != e.cfg.Containerd.Snapshotter || info.SnapshotKey != r.snapshotKey() {
		t.Fatalf("container record: %+v", info)
	}
	for _, k := range []string{LabelHash, LabelPort, LabelStartedAt} {
		if info.Labels[k] == "" {
			t.Errorf("label %s missing: %v", k, info.Labels)
		}
	}
	v, err := typeurl.UnmarshalAny(info.Runtime.Options)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := v.(*options.Options); !ok || o.BinaryName != e.cfg.RuntimeBinary() {
		t.Fatalf("runtime options %#v, want BinaryName %q", v, e.cfg.RuntimeBinary())
	}
	sn, err := r.client.SnapshotService(info.Snapshotter).Stat(ctx, info.SnapshotKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, pinned := sn.Labels[gcRoot]; pinned {
		t.Fatalf("snapshot %s still pinned: %v", sn.Name, sn.Labels)
	}
	if _, err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.SnapshotService(info.Snapshotter).Stat(ctx, info.SnapshotKey); !errdefs.IsNotFound(err) {
		t.Fatalf("snapshot after stop: %v", err)
	}
}

// A start that fails after the snapshot was prepared ahead (here: the
// data directory cannot be created) leaves no snapshot behind.
func TestFailedCreateDropsSnapshot(t *testing.T) {
	e := newEnv(t)
	blocker := filepath.Join(e.dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.cfg.Container.DataDir = filepath.Join(blocker, "data")
	r := e.connect(t)
	ctx := r.ctx(context.Background())
	if _, err := r.ensureImage(ctx); err != nil { // present: the snapshot is prepared ahead
		t.Fatal(err)
	}
	if _, err := r.Start(ctx); err == nil {
		t.Fatal("start with an impossible data dir succeeded")
	}
	if _, err := r.client.SnapshotService(e.cfg.Containerd.Snapshotter).Stat(ctx, r.snapshotKey()); !errdefs.IsNotFound(err) {
		t.Fatalf("snapshot left after a failed start: %v", err)
	}
	e.mustHaveNoContainer(t, r)
}

// A container whose rootfs snapshot is gone is recreated, not reused (its
// task could not be created).
func TestContainerWithoutSnapshotRecreated(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	ctx := r.ctx(context.Background())
	if _, err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ctr, err := r.client.LoadContainer(ctx, e.cfg.Container.ID)
	if err != nil {
		t.Fatal(err)
	}
	if task, err := ctr.Task(ctx, nil); err == nil {
		if err := r.stopTask(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.client.SnapshotService(e.cfg.Containerd.Snapshotter).Remove(ctx, r.snapshotKey()); err != nil {
		t.Fatal(err)
	}
	st, err := r.Start(ctx)
	if err != nil || !st.Recreated {
		t.Fatalf("start over a container without its snapshot: %+v %v", st, err)
	}
}
