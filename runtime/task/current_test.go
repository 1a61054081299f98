//go:build linux

package task

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/errdefs"

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

// An upgrade's archive of several images, none named image.ref, is
// refused naming them; the names the import created are removed, and a
// name that existed before is put back on its old target.
func TestFetchArchiveOfSeveralImages(t *testing.T) {
	e := newEnv(t)
	r, cctx, base := e.connectWithImage(t)
	ctx := context.Background()
	a, b := "localhost/multi-a:test", "localhost/multi-b:test"
	for _, name := range []string{a, b} {
		v := testenv.ImageVariant(t, e.cfg.Image.Archive, e.dir, name, func(c map[string]any) {
			c["Labels"] = map[string]any{"oxios.test.variant": name}
		})
		if _, err := r.Fetch(ctx, name, v); err != nil {
			t.Fatal(err)
		}
	}
	multi := filepath.Join(e.dir, "multi.tar")
	f, err := os.Create(multi)
	if err != nil {
		t.Fatal(err)
	}
	is := r.client.ImageService()
	if err := r.client.Export(cctx, f, archive.WithImage(is, a), archive.WithImage(is, b)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// a: created by the import below; b: there before, on another image.
	if err := r.Untag(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := r.Tag(ctx, b, base.Target()); err != nil {
		t.Fatal(err)
	}

	_, err = r.Fetch(ctx, e.cfg.Image.Ref, multi)
	if !errors.Is(err, ErrArchiveImages) || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) || strings.Contains(err.Error(), "set image.ref") {
		t.Fatalf("fetch of a two-image archive: %v; want ErrArchiveImages naming %s and %s", err, a, b)
	}
	if _, err := is.Get(cctx, a); !errdefs.IsNotFound(err) {
		t.Fatalf("%s, created by the import, is left: %v", a, err)
	}
	if got, err := r.ImageTarget(ctx, b); err != nil || got.Digest != base.Target().Digest {
		t.Fatalf("%s, there before: %v %v; want it back on %s", b, got.Digest, err, base.Target().Digest)
	}
	if got, err := r.ImageTarget(ctx, e.cfg.Image.Ref); err != nil || got.Digest != base.Target().Digest {
		t.Fatalf("image.ref moved: %v %v", got.Digest, err)
	}
}
