//go:build linux

package task

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
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
)

// startRegistry runs Debian's docker-registry on 127.0.0.1 and returns
// host:port once it answers /v2/.
func startRegistry(t *testing.T) string {
	bin := testenv.RequireTool(t, "docker-registry")
	dir := t.TempDir()
	port := testenv.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cfg := filepath.Join(dir, "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)), 0o644)
	cmd := exec.Command(bin, "serve", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The registry has no readiness signal; connect until it listens.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pushImage imports the archive into a separate containerd (so the test's
// containerd really has to pull) and pushes it as ref.
func pushImage(t *testing.T, archive, ref string) {
	seed := ctrtest.Start(t)
	cl, err := client.New(seed)
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
		t.Fatalf("import: %v", err)
	}
	resolver := newResolver(true)
	if err := cl.Push(ctx, ref, imgs[0].Target, client.WithResolver(resolver)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func TestPullFromLocalRegistry(t *testing.T) {
	e := newEnv(t)
	reg := startRegistry(t)
	ref := reg + "/oxios/demo:test"
	pushImage(t, e.cfg.Image.Archive, ref)
	e.cfg.Image.Ref = ref
	e.cfg.Image.Archive = ""
	e.cfg.Image.PlainHTTP = true
	r := e.connect(t)
	st, err := r.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if get(t, st.URL+"/health") != 200 {
		t.Fatal("pulled image does not serve")
	}
	s, err := r.Status(context.Background())
	if err != nil || s.Image != ref || s.ImageDigest == "" {
		t.Fatalf("status: %+v %v", s, err)
	}
}
