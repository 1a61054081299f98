//go:build linux

package task

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
)

// registryEnv: a daemon started from ref, pulled from a local registry.
func registryEnv(t *testing.T) (*env, *Runtime, string) {
	e := newEnv(t)
	reg := ctrtest.StartRegistry(t)
	ref := reg + "/oxios/demo:stable"
	ctrtest.Push(t, e.cfg.Image.Archive, ref)
	e.cfg.Image.Ref, e.cfg.Image.Archive, e.cfg.Image.PlainHTTP = ref, "", true
	r := e.connect(t)
	if _, err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e, r, ref
}

// The registry serves what runs: nothing is newer.
func TestRemoteSameDigestIsNotNewer(t *testing.T) {
	_, r, ref := registryEnv(t)
	f, err := r.CheckNewer(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if f.Ref != ref || f.Remote == "" || f.Remote != f.Running || f.Remote != f.Local || f.Newer() {
		t.Fatalf("freshness %+v: want remote = running = local, not newer", f)
	}
}

// A new image pushed under the same tag is newer, and finding that out
// fetches nothing into containerd: the stored image and its blobs are
// untouched.
func TestRemoteNewPushIsNewerWithoutPull(t *testing.T) {
	_, r, ref := registryEnv(t)
	before, err := r.CheckNewer(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	variant := testenv.ImageVariant(t, testenv.ImageArchive(t), t.TempDir(), ref, func(c map[string]any) {
		c["Labels"] = map[string]any{"oxios.test.variant": "2"}
	})
	ctrtest.Push(t, variant, ref)
	f, err := r.CheckNewer(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !f.Newer() || f.Remote == before.Remote || f.Running != before.Running || f.Local != before.Local {
		t.Fatalf("after a push: %+v (before %+v): want a new remote digest, running and local unchanged", f, before)
	}
	ctx := r.ctx(context.Background())
	if _, err := r.client.ContentStore().Info(ctx, f.Remote); !errdefs.IsNotFound(err) {
		t.Fatalf("manifest %s in containerd's content store (err %v): the check must not pull", f.Remote, err)
	}
}

// The running container keeps its digest when the name is re-pointed by
// a pull: an upgrade is still due although the stored image is current.
func TestRemoteRunningPinnedAcrossRepull(t *testing.T) {
	_, r, ref := registryEnv(t)
	variant := testenv.ImageVariant(t, testenv.ImageArchive(t), t.TempDir(), ref, func(c map[string]any) {
		c["Labels"] = map[string]any{"oxios.test.variant": "3"}
	})
	ctrtest.Push(t, variant, ref)
	if _, err := r.pull(r.ctx(context.Background())); err != nil {
		t.Fatal(err)
	}
	f, err := r.CheckNewer(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if f.Local != f.Remote || f.Running == f.Remote || !f.Newer() {
		t.Fatalf("after a pull without restart: %+v: want local = remote, running older, newer", f)
	}
}

// With nothing running, the stored image decides.
func TestRemoteNothingRunningComparesStored(t *testing.T) {
	_, r, _ := registryEnv(t)
	if _, err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := r.CheckNewer(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if f.Running != "" || f.Local != f.Remote || f.Newer() {
		t.Fatalf("stopped: %+v: want no running digest, local = remote, not newer", f)
	}
}

func TestRemoteUnreachableRegistry(t *testing.T) {
	e := newEnv(t)
	e.cfg.Image.Ref = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/oxios/demo:stable"
	e.cfg.Image.PlainHTTP = true
	r := e.connect(t)
	if f, err := r.CheckNewer(context.Background(), ""); err == nil {
		t.Fatalf("a registry that does not listen: %+v, no error", f)
	}
}

func TestRemoteLocalRefHasNoRegistry(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	_, err := r.CheckNewer(context.Background(), "localhost/oxios:latest")
	if !errors.Is(err, ErrNoRegistry) {
		t.Fatalf("localhost/ ref: %v, want ErrNoRegistry", err)
	}
}
