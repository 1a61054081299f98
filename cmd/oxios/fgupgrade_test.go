//go:build linux

package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

// `oxios start --foreground` (what the systemd unit runs) through an
// `oxios upgrade` from another shell, then a rolled-back one: each time
// RELOADING=1 with the upgrade's status, READY=1 again on the daemon the
// upgrade left with its outcome, and the foreground process never exits.
func TestForegroundThroughUpgrade(t *testing.T) {
	c := newCLI(t, "[upgrade]\nverify_for = \"1s\"\nstate_dir = \"state\"\n")
	n := newNotifySocket(t)
	p := c.startForeground(t, n, 400*time.Millisecond)
	n.await(t, "READY=1", 30*time.Second)
	archive := testenv.ImageArchive(t)
	good := testenv.ImageVariant(t, archive, c.dir, "localhost/good:test", func(m map[string]any) { m["Labels"] = map[string]any{"v": "2"} })
	if out, errs, code := c.run("upgrade", "--archive", good); code != 0 {
		t.Fatalf("upgrade: %d\n%s\n%s", code, out, errs)
	}
	seen := n.await(t, "RELOADING=1", 10*time.Second)
	if !strings.Contains(seen[len(seen)-1], "STATUS=upgrading to localhost/oxios:latest@sha256:") {
		t.Fatalf("reload note %q", seen[len(seen)-1])
	}
	seen = n.await(t, "READY=1", 30*time.Second)
	if !strings.Contains(seen[len(seen)-1], "; upgrade to localhost/oxios:latest@sha256:") {
		t.Fatalf("ready note after the upgrade %q", seen[len(seen)-1])
	}

	crash := testenv.ImageVariant(t, archive, c.dir, "localhost/crash:test", func(m map[string]any) {
		m["Env"] = append(m["Env"].([]any), "OXIOS_DEMO_EXIT_AFTER=0s", "OXIOS_DEMO_EXIT_CODE=3")
	})
	if out, errs, code := c.run("upgrade", "--archive", crash); code != 1 {
		t.Fatalf("bad upgrade: %d\n%s\n%s", code, out, errs)
	}
	n.await(t, "RELOADING=1", 10*time.Second)
	seen = n.await(t, "READY=1", 30*time.Second)
	if !strings.Contains(seen[len(seen)-1], "rolled back (") {
		t.Fatalf("ready note after the rollback %q", seen[len(seen)-1])
	}
	select {
	case <-p.done:
		t.Fatalf("the foreground exited during an upgrade\n%s", p.stderr)
	default:
	}
	if httpStatus(c.url()+"/health/ready") != 200 {
		t.Fatal("not ready after the rollback")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 || c.hasContainer() {
		t.Fatalf("SIGTERM after the upgrades: exit %d, container left %v\n%s", code, c.hasContainer(), p.stderr)
	}
}
