//go:build linux

package upgrade

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a7garden/oxios/runtime/config"
)

// image.ref imported again without a restart: the running version is
// the container's digest, not the name's, so the upgrade refuses with
// the reason (not a spec mismatch) and stops nothing.
func TestUpgradeRefMovedWithoutRestart(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	before := running(t, r)
	moved, err := r.Fetch(context.Background(), e.cfg.Image.Ref, e.variant(t, "moved", "OXIOS_DEMO_X=1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Tag(context.Background(), e.cfg.Image.Ref, moved); err != nil {
		t.Fatal(err)
	}
	_, err = Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: e.variant(t, "next", "OXIOS_DEMO_Y=1"), Out: testWriter{t}})
	if !errors.Is(err, ErrConfigChanged) || !strings.Contains(err.Error(), "pulled or imported again") {
		t.Fatalf("upgrade after image.ref moved: %v; want ErrConfigChanged naming the re-pull", err)
	}
	if after := running(t, r); after.PID != before.PID {
		t.Fatalf("the daemon was restarted: PID %d -> %d", before.PID, after.PID)
	}
}

// upgrade.snapshot_data with a tmpfs mounted inside the data dir (the
// data dir itself a tmpfs too, so that the restore would run in place
// and fail at the nested mount point): refused before anything is
// stopped, naming the nested mount; the old daemon runs on and nothing
// is recorded. The same data dir without snapshot_data upgrades.
func TestSnapshotDataRefusesNestedMount(t *testing.T) {
	var nested string
	e := newEnv(t, func(c *config.Config) {
		os.MkdirAll(c.Container.DataDir, 0o755)
		mountOpts(t, "tmpfs", c.Container.DataDir, "tmpfs", 0, "mode=0750,uid=65532,gid=65532")
		nested = filepath.Join(c.Container.DataDir, "cache")
		os.Mkdir(nested, 0o755)
		mountOpts(t, "tmpfs", nested, "tmpfs", 0, "mode=0755")
		c.Upgrade.SnapshotData = true
	})
	r := e.connect(t)
	before := running(t, r)
	next := e.variant(t, "nested", "OXIOS_DEMO_Z=1")
	rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: next, Out: testWriter{t}})
	if !errors.Is(err, ErrNestedMount) || !strings.Contains(err.Error(), nested) || rec != nil {
		t.Fatalf("upgrade with a mount inside the data dir: %v %+v; want ErrNestedMount naming %s", err, rec, nested)
	}
	if after := running(t, r); after.PID != before.PID {
		t.Fatalf("the old daemon was stopped: PID %d -> %d", before.PID, after.PID)
	}
	if h, err := History(e.cfg, 0); err != nil || len(h) != 0 {
		t.Fatalf("history after a refusal: %+v %v", h, err)
	}
	e.cfg.Upgrade.SnapshotData = false
	if rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: next, Out: testWriter{t}}); err != nil || rec.Outcome != Upgraded {
		t.Fatalf("without snapshot_data: %v %+v", err, rec)
	}
}
