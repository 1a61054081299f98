//go:build linux

package ctrtest

import (
	"context"
	"os"
	"testing"

	"github.com/containerd/containerd/v2/client"
)

func version(t *testing.T, addr string) string {
	t.Helper()
	cl, err := client.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v, err := cl.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v.Version
}

func TestStartRestartTeardown(t *testing.T) {
	var root string
	t.Run("run", func(t *testing.T) {
		c := StartDaemon(t)
		root = c.Root
		t.Logf("containerd %s at %s", version(t, c.Address), c.Address)
		c.Restart()
		version(t, c.Address)
	})
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("root %s left behind", root)
	}
}
