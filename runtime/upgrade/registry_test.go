//go:build linux

package upgrade

import (
	"context"
	"testing"

	"github.com/a7garden/oxios/internal/ctrtest"
)

// `oxios upgrade` with no REF pulls image.ref again from a local
// registry (Debian's docker-registry) after the tag moved there: the new
// digest runs, and a rollback finds the old one, though the pull had
// moved image.ref in containerd before the old daemon was stopped.
func TestUpgradePullsMovedTag(t *testing.T) {
	e, ref := registryDaemon(t)
	r := e.connect(t)
	old := running(t, r)
	ctrtest.Push(t, e.variant(t, "v2"), ref)
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
