//go:build linux

package task

import (
	"context"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"

	"github.com/a7garden/oxios/internal/testenv"
)

// Current reports the digest the container was created from, not the
// one its image name holds now: a ref pulled or imported again without a
// restart must not read as the running version (an upgrade would then
// record the wrong rollback target, or --if-newer would skip one that is
// due). A container made before the label existed falls back to the name.
func TestCurrentDigestIsTheContainersNotTheNames(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	ctx := context.Background()
	if _, err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(context.Background()) })
	started, err := r.ImageTarget(ctx, e.cfg.Image.Ref)
	if err != nil {
		t.Fatal(err)
	}
	variant := testenv.ImageVariant(t, e.cfg.Image.Archive, e.dir, "localhost/current-variant:test", func(c map[string]any) {
		c["Labels"] = map[string]any{"oxios.test.variant": "current"}
	})
	moved, err := r.Fetch(ctx, "localhost/current-variant:test", variant)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Tag(ctx, e.cfg.Image.Ref, moved); err != nil {
		t.Fatal(err)
	}
	cur, err := r.Current(ctx)
	if err != nil || cur == nil || !cur.Up {
		t.Fatalf("current: %+v %v", cur, err)
	}
	if cur.Digest != started.Digest.String() {
		t.Fatalf("after %s was re-pointed to %s: Current digest %s, want the container's %s", e.cfg.Image.Ref, moved.Digest, cur.Digest, started.Digest)
	}

	// The same container without the label: the name decides.
	cctx := r.ctx(ctx)
	_, err = r.client.ContainerService().Update(cctx, containers.Container{ID: e.cfg.Container.ID}, "labels."+LabelImageDigest)
	if err != nil {
		t.Fatal(err)
	}
	if cur, err = r.Current(ctx); err != nil || cur.Digest != moved.Digest.String() {
		t.Fatalf("without %s: Current %+v %v, want the name's digest %s", LabelImageDigest, cur, err, moved.Digest)
	}
}
