//go:build linux

package upgrade

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
	"github.com/a7garden/oxios/runtime/task"
)

// registryDaemon: the daemon runs image ref, pulled from a local registry.
func registryDaemon(t *testing.T) (*env, string) {
	e := newEnv(t)
	reg := ctrtest.StartRegistry(t)
	ref := reg + "/oxios/demo:stable"
	ctrtest.Push(t, e.archive, ref)
	e.cfg.Image.Ref, e.cfg.Image.Archive, e.cfg.Image.PlainHTTP = ref, "", true
	r := e.connect(t)
	if _, err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(context.Background()); err != nil {
		t.Fatalf("start from the registry: %v", err)
	}
	return e, ref
}

// The registry serves the running digest: nothing is stopped, nothing
// recorded, the same task runs on.
func TestUpgradeIfNewerEqualDigest(t *testing.T) {
	e, _ := registryDaemon(t)
	r := e.connect(t)
	before := running(t, r)
	o := e.opts(t, r)
	o.IfNewer = true
	// An upgrade by hand holds the upgrade lock: the timer's check, which
	// neither pulls nor records, does not need it.
	unlock, err := newStore(e.cfg).lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := Upgrade(context.Background(), o); !errors.Is(err, ErrBusy) {
		t.Fatalf("Upgrade under a held upgrade lock: %v, want ErrBusy", err)
	}
	rec, err := UpgradeIfNewer(context.Background(), o)
	if err != nil || rec.Outcome != Unchanged || rec.To.Digest != before.Digest {
		t.Fatalf("equal digest: %v %+v, want unchanged at %s", err, rec, before.Digest)
	}
	if after := running(t, r); after.PID != before.PID {
		t.Fatalf("the daemon was replaced: PID %d -> %d", before.PID, after.PID)
	}
	if h, err := History(e.cfg, 0); err != nil || len(h) != 0 {
		t.Fatalf("history after a no-op check: %+v %v", h, err)
	}
}

// A new digest under the tag: the upgrade runs and the new digest runs.
func TestUpgradeIfNewerNewDigest(t *testing.T) {
	e, ref := registryDaemon(t)
	r := e.connect(t)
	before := running(t, r)
	ctrtest.Push(t, e.variant(t, "v2"), ref)
	o := e.opts(t, r)
	o.IfNewer = true
	rec, err := UpgradeIfNewer(context.Background(), o)
	if err != nil || rec.Outcome != Upgraded {
		t.Fatalf("new digest: %v %+v", err, rec)
	}
	if after := running(t, r); after.Digest == before.Digest || after.PID == before.PID {
		t.Fatalf("still the old image: %+v", after)
	}
}

// An unreachable registry: an error, the old daemon untouched.
func TestUpgradeIfNewerRegistryDown(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	before := running(t, r)
	o := e.opts(t, r)
	o.IfNewer = true
	o.Ref = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/oxios/demo:stable"
	e.cfg.Image.PlainHTTP = true
	if rec, err := UpgradeIfNewer(context.Background(), o); err == nil {
		t.Fatalf("registry down: %+v, no error", rec)
	}
	if after := running(t, r); after.PID != before.PID {
		t.Fatalf("the daemon was replaced: PID %d -> %d", before.PID, after.PID)
	}
}

// A local build: --if-newer imports image.archive and compares; the same
// archive changes nothing, a rebuilt one is upgraded to.
func TestUpgradeIfNewerArchive(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	before := running(t, r)
	o := e.opts(t, r)
	o.IfNewer = true
	rec, err := UpgradeIfNewer(context.Background(), o)
	if err != nil || rec.Outcome != Unchanged {
		t.Fatalf("same archive: %v %+v", err, rec)
	}
	if after := running(t, r); after.PID != before.PID {
		t.Fatalf("the daemon was replaced: PID %d -> %d", before.PID, after.PID)
	}
	e.cfg.Image.Archive = e.variant(t, "rebuilt")
	if rec, err = UpgradeIfNewer(context.Background(), o); err != nil || rec.Outcome != Upgraded {
		t.Fatalf("rebuilt archive: %v %+v", err, rec)
	}
	e.cfg.Image.Archive = ""
	if _, err := UpgradeIfNewer(context.Background(), o); !errors.Is(err, task.ErrNoRegistry) {
		t.Fatalf("a local ref and no archive: %v, want ErrNoRegistry", err)
	}
}
