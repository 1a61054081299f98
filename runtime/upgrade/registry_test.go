//go:build linux

package upgrade

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
)

// `oxios upgrade` with no REF pulls image.ref again from a local
// registry (Debian's docker-registry) after the tag moved there: the new
// digest runs, and a rollback finds the old one, though the pull had
// moved image.ref in containerd before the old daemon was stopped.
func TestUpgradePullsMovedTag(t *testing.T) {
	e, ref := registryDaemon(t)
	r := e.connect(t)
	old := running(t, r)
	push(t, e.variant(t, "v2"), ref)
	// Until the old daemon is stopped, image.ref must name the old image
	// (a concurrent `oxios start` adopts the old daemon).
	var atStop string
	rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Out: testWriter{t}, OnStep: func(s Step) {
		if s == StepStopping {
			d, _ := r.ImageTarget(context.Background(), ref)
			atStop = d.Digest.String()
		}
	}})
	if atStop != old.Digest {
		t.Errorf("image.ref named %s when the old daemon was stopped, want %s", atStop, old.Digest)
	}
	if err != nil || rec.Outcome != Upgraded {
		t.Fatalf("upgrade: %v %+v", err, rec)
	}
	now := running(t, r)
	if now.Digest == old.Digest || now.Image != ref {
		t.Fatalf("after the pull: %+v, was %+v", now, old)
	}
	e.serves(t)
	if _, err := Rollback(context.Background(), e.opts(t, r)); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if back := running(t, r); back.Digest != old.Digest {
		t.Fatalf("after the rollback: %s, want %s", back.Digest, old.Digest)
	}
}

// startRegistry runs docker-registry on 127.0.0.1 and returns host:port
// once it accepts connections.
func startRegistry(t *testing.T) string {
	bin := testenv.RequireTool(t, "docker-registry")
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	cfg := filepath.Join(dir, "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)), 0o644)
	cmd := exec.Command(bin, "serve", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The registry has no readiness signal: connect until it listens.
	ok := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			ok = true
			break
		}
	}
	if !ok {
		t.Fatalf("registry on %s never listened", addr)
	}
	return addr
}

// push imports archive into a containerd of its own (so the test's has to
// pull) and pushes it as ref.
func push(t *testing.T, archive, ref string) {
	cl, err := client.New(ctrtest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := namespaces.WithNamespace(context.Background(), "seed")
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imgs, err := cl.Import(ctx, f)
	if err != nil || len(imgs) == 0 {
		t.Fatalf("import %s: %v", archive, err)
	}
	hosts := docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(func(string) (bool, error) { return true, nil }))
	if err := cl.Push(ctx, ref, imgs[0].Target, client.WithResolver(docker.NewResolver(docker.ResolverOptions{Hosts: hosts}))); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}
