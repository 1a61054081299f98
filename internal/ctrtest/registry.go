package ctrtest

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

	"github.com/a7garden/oxios/internal/testenv"
)

// StartRegistry runs Debian's docker-registry on 127.0.0.1 (plain HTTP,
// storage in a temp dir) and returns host:port once it accepts
// connections; the test's cleanup stops it.
func StartRegistry(t *testing.T) string {
	t.Helper()
	bin := testenv.RequireTool(t, "docker-registry")
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The registry has no readiness signal: connect until it listens.
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

// Push imports archive into a containerd of its own (so that the test's
// containerd really has to pull) and pushes its first image as ref over
// plain HTTP.
func Push(t *testing.T, archive, ref string) {
	t.Helper()
	cl, err := client.New(Start(t))
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
