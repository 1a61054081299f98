//go:build linux

package upgrade

import (
	"context"
	"errors"
	"strings"
	"testing"
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
