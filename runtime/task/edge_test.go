//go:build linux

package task

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/a7garden/oxios/internal/testenv"
	"github.com/a7garden/oxios/runtime/config"
)

// resources.pids defaults to 4096 in the spec; an explicit 0 is no limit.
func TestPidsLimitDefault(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "oxios")
	for pids, want := range map[int64]int64{config.DefaultPids: 4096, 0: 0} {
		c := config.Default()
		c.Resources.Pids = pids
		r := &Runtime{cfg: c}
		s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "x"}, r.resources()...)
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		if res := s.Linux.Resources; res != nil && res.Pids != nil && res.Pids.Limit != nil {
			got = *res.Pids.Limit
		}
		if got != want {
			t.Errorf("resources.pids = %d: spec pids.limit %d, want %d (0 = none)", pids, got, want)
		}
	}
}

// An image whose USER is root (or unset) runs as host uid 0, since the
// container has no user namespace: refused naming the image and the key,
// unless container.user asks for root, and then warned about.
func TestRootImageNeedsExplicitUser(t *testing.T) {
	testenv.RequireRoot(t)
	e := newEnv(t)
	for ref, edit := range map[string]func(map[string]any){
		"localhost/oxios-root:latest":   func(c map[string]any) { c["User"] = "0:0" },
		"localhost/oxios-nouser:latest": func(c map[string]any) { delete(c, "User") },
	} {
		e.cfg.Image.Ref = ref
		e.cfg.Image.Archive = testenv.ImageVariant(t, testenv.ImageArchive(t), e.dir, ref, edit)
		r := e.connect(t)
		_, err := r.Start(context.Background())
		if !errors.Is(err, ErrRootImage) || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), "container.user") {
			t.Fatalf("start with %s: %v, want ErrRootImage naming the image and container.user", ref, err)
		}
		if _, err := r.client.LoadContainer(r.ctx(context.Background()), e.cfg.Container.ID); !errdefs.IsNotFound(err) {
			t.Errorf("%s refused, but a container exists: %v", ref, err)
		}
	}
	e.cfg.Container.User = "0"
	var out testenv.Buffer
	exe, _ := os.Executable()
	r, err := Connect(context.Background(), Options{Config: e.cfg, LogDriver: exe, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Start(context.Background()); err != nil {
		t.Fatalf("start with container.user = \"0\": %v", err)
	}
	defer r.Stop(context.Background())
	if s := e.spec(t, r); s.Process.User.UID != 0 {
		t.Errorf("container.user = \"0\": spec uid %d", s.Process.User.UID)
	}
	if !strings.Contains(out.String(), "warning: container.user = \"0\" runs the daemon as uid 0, root on the host") {
		t.Errorf("no warning about root:\n%s", out.String())
	}
	t.Logf("progress and warning:\n%s", out.String())
}
