//go:build linux

package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a7garden/oxios/internal/testenv"
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

// refusingRuntime is the OCI runtime the test config runs (crun or runc)
// behind a wrapper that fails the subcommand written to the returned
// file, as a runtime that refuses it would: containerd's shim then
// returns a real error for the task's Kill or Delete.
func refusingRuntime(t *testing.T, c *config.Config) string {
	real := c.RuntimeBinary()
	if real == "" { // the shim's default; under CI a missing runc fails
		real = testenv.RequireTool(t, "runc")
	}
	dir := t.TempDir()
	refuse := filepath.Join(dir, "refuse")
	script := fmt.Sprintf(`#!/bin/sh
if [ -r %[1]s ]; then
	refuse=$(cat %[1]s)
	for a in "$@"; do
		if [ "$a" = "$refuse" ]; then
			echo "oxios test: $refuse refused" >&2
			exit 1
		fi
	done
fi
exec %[2]s "$@"
`, refuse, real)
	wrapper := filepath.Join(dir, "runtime")
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c.Containerd.RuntimeBinary = wrapper
	return refuse
}

// A stop that errors for real in an upgrade (the runtime refuses the
// task's Kill, or its Delete after the old daemon drained): the record
// is finished, never left in progress, and says what failed and whether
// a daemon runs; once the runtime obeys again, the next command brings
// back exactly one daemon on the old image.
func TestUpgradeStopFails(t *testing.T) {
	for _, c := range []struct {
		refuse  string
		outcome Outcome
		want    error
	}{
		// SIGTERM refused: the old daemon never stopped, and runs on.
		{"kill", Unchanged, nil},
		// The drained task cannot be deleted: none runs, and it says so.
		{"delete", Failed, ErrNoDaemon},
	} {
		t.Run(c.refuse, func(t *testing.T) {
			var refuse string
			e := newEnv(t, func(cfg *config.Config) { refuse = refusingRuntime(t, cfg) })
			r := e.connect(t)
			old := running(t, r)
			next := e.variant(t, "next-"+c.refuse, "OXIOS_DEMO_Q=1")
			if err := os.WriteFile(refuse, []byte(c.refuse), 0o644); err != nil {
				t.Fatal(err)
			}
			rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: next, Out: testWriter{t}})
			if err == nil || c.want != nil && !errors.Is(err, c.want) || rec == nil || rec.Outcome != c.outcome || !strings.Contains(rec.Failure, "stop the old daemon") {
				t.Fatalf("upgrade with %s refused: %v %+v; want outcome %s, error %v", c.refuse, err, rec, c.outcome, c.want)
			}
			t.Logf("failure: %s; note: %s", rec.Failure, rec.Note)
			if got := lastHistory(t, e.cfg); got.ID != rec.ID || got.Outcome != c.outcome {
				t.Fatalf("history: %+v", got)
			}
			if st, err := Load(e.cfg); err != nil || st.InProgress != nil {
				t.Fatalf("an upgrade left in progress: %+v %v", st.InProgress, err)
			}
			if cur, err := r.Current(context.Background()); c.outcome == Unchanged && (err != nil || !cur.Up || cur.PID != old.PID) {
				t.Fatalf("the old daemon does not run on: %+v %v", cur, err)
			}

			os.Remove(refuse)
			if _, err := r.Start(context.Background()); err != nil {
				t.Fatalf("start once the runtime obeys: %v", err)
			}
			if cur := running(t, r); cur.Digest != rec.From.Digest {
				t.Fatalf("after the start: digest %s, want the old %s", cur.Digest, rec.From.Digest)
			}
			e.serves(t)
			if rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: next, Out: testWriter{t}}); err != nil || rec.Outcome != Upgraded {
				t.Fatalf("the next upgrade: %v %+v", err, rec)
			}
		})
	}
}

// The rollback's stop of the new daemon refused by the runtime: the new
// daemon runs on, unverified, so the record must not say "no daemon
// runs" (the next start would adopt the unverified daemon as if it were
// current): it stays in progress, and the next command, once the runtime
// obeys, goes back to the old image.
func TestRollbackStopFailsStaysInProgress(t *testing.T) {
	var refuse string
	e := newEnv(t, func(cfg *config.Config) { refuse = refusingRuntime(t, cfg) })
	r := e.connect(t)
	old := running(t, r)
	next := e.variant(t, "next-rb", "OXIOS_DEMO_R=1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec, err := Upgrade(ctx, Options{Config: e.cfg, Runtime: r, Archive: next, Out: testWriter{t},
		OnStep: func(s Step) {
			switch s {
			case StepVerifying:
				cancel() // a SIGINT in the window: go back
			case StepRollingBack:
				if err := os.WriteFile(refuse, []byte("kill"), 0o644); err != nil {
					t.Error(err)
				}
			}
		}})
	if !errors.Is(err, ErrUnfinished) || errors.Is(err, ErrNoDaemon) || rec == nil || rec.Outcome != "" {
		t.Fatalf("rollback whose stop is refused: %v %+v; want ErrUnfinished, no outcome", err, rec)
	}
	st, err := Load(e.cfg)
	if err != nil || st.InProgress == nil || st.InProgress.Step != StepRollingBack {
		t.Fatalf("the record is not left in progress at rolling-back: %+v %v", st.InProgress, err)
	}
	if cur := running(t, r); cur.Digest == old.Digest {
		t.Fatalf("the new daemon should still run (its stop was refused): %+v", cur)
	}

	os.Remove(refuse)
	rec, err = Recover(context.Background(), e.opts(t, r))
	if err != nil || rec == nil || rec.Outcome != Recovered {
		t.Fatalf("recovery once the runtime obeys: %v %+v", err, rec)
	}
	if cur := running(t, r); cur.Digest != old.Digest {
		t.Fatalf("after the recovery: digest %s, want the old %s", cur.Digest, old.Digest)
	}
	e.serves(t)
}
