//go:build linux

package upgrade

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/a7garden/oxios/runtime/config"
)

// A good image: upgraded, verified, recorded; then a rollback by hand
// brings the old digest back, and a second one the new again.
func TestUpgradeThenRollback(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	ctx := context.Background()
	intact := e.dataFile(t)
	old := running(t, r)
	rec, err := Upgrade(ctx, Options{Config: e.cfg, Runtime: r, Archive: e.variant(t, "v2"), Out: testWriter{t}})
	if err != nil {
		t.Fatalf("upgrade: %v (%+v)", err, rec)
	}
	now := running(t, r)
	if rec.Outcome != Upgraded || now.Digest == old.Digest || now.Digest != rec.To.Digest || rec.From.Digest != old.Digest {
		t.Fatalf("record %+v; running %s, was %s", rec, now.Digest, old.Digest)
	}
	if rec.DowntimeSeconds <= 0 || now.Image != e.cfg.Image.Ref {
		t.Fatalf("downtime %v, image name %s", rec.DowntimeSeconds, now.Image)
	}
	e.serves(t)
	intact()
	st, err := Load(e.cfg)
	if err != nil || st.Current == nil || st.Previous == nil || st.Current.Digest != now.Digest || st.Previous.Digest != old.Digest || st.InProgress != nil {
		t.Fatalf("state %+v %v", st, err)
	}

	rec, err = Rollback(ctx, e.opts(t, r))
	if err != nil || rec.Outcome != Upgraded || rec.Kind != KindRollback {
		t.Fatalf("rollback: %v %+v", err, rec)
	}
	if back := running(t, r); back.Digest != old.Digest || back.Hash != old.Hash {
		t.Fatalf("after rollback: %+v, want %+v", back, old)
	}
	e.serves(t)
	intact()
	if rec, err = Rollback(ctx, e.opts(t, r)); err != nil || running(t, r).Digest != now.Digest {
		t.Fatalf("second rollback: %v %+v", err, rec)
	}
	h, _ := History(e.cfg, 0)
	if len(h) != 3 || h[0].Kind != KindRollback || h[2].Kind != KindUpgrade {
		t.Fatalf("history %+v", h)
	}
}

// failedUpgrade upgrades to a bad variant and checks the rollback: the
// error, the record, the old daemon running and ready, the data intact.
func failedUpgrade(t *testing.T, e *env, archive, wantFailure string) *Record {
	t.Helper()
	r := e.connect(t)
	intact := e.dataFile(t)
	old := running(t, r)
	rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: archive, Out: testWriter{t}})
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("upgrade: %v, want ErrRolledBack", err)
	}
	if rec.Outcome != RolledBack || !strings.Contains(rec.Failure, wantFailure) {
		t.Fatalf("record: outcome %s, failure %q; want one with %q", rec.Outcome, rec.Failure, wantFailure)
	}
	if rec.RollbackSeconds <= 0 || rec.DowntimeSeconds < rec.RollbackSeconds {
		t.Fatalf("rollback %v s, downtime %v s", rec.RollbackSeconds, rec.DowntimeSeconds)
	}
	if now := running(t, r); now.Digest != old.Digest || now.Hash != old.Hash {
		t.Fatalf("after the rollback: %+v, want %+v", now, old)
	}
	e.serves(t)
	intact()
	if h := lastHistory(t, e.cfg); h.Outcome != RolledBack || h.ID != rec.ID {
		t.Fatalf("history: %+v", h)
	}
	if st, _ := Load(e.cfg); st.InProgress != nil || st.Current != nil {
		t.Fatalf("state after a rolled-back first upgrade: %+v", st)
	}
	return rec
}

func TestUpgradeCrashAtStartRollsBack(t *testing.T) {
	e := newEnv(t)
	rec := failedUpgrade(t, e, e.variant(t, "crash", "OXIOS_DEMO_EXIT_AFTER=0s", "OXIOS_DEMO_EXIT_CODE=3"), "exited with code")
	if len(rec.LogTail) == 0 {
		t.Fatal("no log tail of the new daemon in the report")
	}
}

func TestUpgradeNeverReadyRollsBack(t *testing.T) {
	e := newEnv(t)
	e.cfg.Container.StartTimeout = config.Duration(3 * time.Second)
	failedUpgrade(t, e, e.variant(t, "unready", "OXIOS_DEMO_READY_DELAY=1h"), "container.start_timeout")
}

func TestUpgradeLivenessFailsInWindowRollsBack(t *testing.T) {
	e := newEnv(t)
	e.cfg.Upgrade.VerifyFor = config.Duration(8 * time.Second)
	failedUpgrade(t, e, e.variant(t, "hang", "OXIOS_DEMO_HANG_AFTER=1s"), "upgrade.verify_for")
}

// An upgrade whose context is cancelled (the CLI's SIGINT or SIGTERM)
// ends with nothing changed before the stop, and rolls back after it:
// it never leaves no daemon.
func TestUpgradeCancelled(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	old := running(t, r)
	v2 := e.variant(t, "v2")
	for _, tc := range []struct {
		at      Step
		outcome Outcome
	}{{StepFetch, Unchanged}, {StepVerifying, RolledBack}} {
		ctx, cancel := context.WithCancel(context.Background())
		rec, err := Upgrade(ctx, Options{Config: e.cfg, Runtime: r, Archive: v2, Out: testWriter{t}, OnStep: func(s Step) {
			if s == tc.at {
				cancel()
			}
		}})
		cancel()
		if err == nil || rec == nil || rec.Outcome != tc.outcome {
			t.Fatalf("cancelled at %s: %v %+v", tc.at, err, rec)
		}
		now := running(t, r)
		if now.Digest != old.Digest || tc.at == StepFetch && now.PID != old.PID {
			t.Fatalf("after a cancel at %s: %+v, was %+v", tc.at, now, old)
		}
		e.serves(t)
	}
}

// Variants share the image's layers: each upgrade's image must hold its
// own reference to the unpacked layers, so that once the first version's
// image is released (two upgrades later) and no container holds them, the
// garbage collector leaves them. Else a start that found them unpacked
// races the collector and fails to prepare its rootfs.
func TestLayersKeptAfterTwoUpgrades(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	ctx := context.Background()
	for _, name := range []string{"v2", "v3"} {
		if rec, err := Upgrade(ctx, Options{Config: e.cfg, Runtime: r, Archive: e.variant(t, name), Out: testWriter{t}}); err != nil {
			t.Fatalf("upgrade to %s: %v %+v", name, err, rec)
		}
	}
	v3 := running(t, r)
	if _, err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// A synchronous delete runs the garbage collector now.
	target, err := r.ImageTarget(ctx, e.cfg.Image.Ref)
	if err == nil {
		err = r.Tag(ctx, "gc-trigger.local/x:y", target)
	}
	if err == nil {
		err = r.Untag(ctx, "gc-trigger.local/x:y")
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := committedSnapshots(t, e.cfg); n == 0 {
		t.Fatal("the garbage collector removed the image's layers: no image references them")
	}
	if _, err := r.Start(ctx); err != nil {
		t.Fatalf("start v3 after a garbage collection: %v", err)
	}
	if rec, err := Rollback(ctx, e.opts(t, r)); err != nil {
		t.Fatalf("rollback to v2: %v %+v", err, rec)
	}
	if now := running(t, r); now.Digest == v3.Digest {
		t.Fatalf("still on v3 after the rollback")
	}
	e.serves(t)
}

// committedSnapshots counts the unpacked layers in the configured
// snapshotter.
func committedSnapshots(t *testing.T, cfg *config.Config) int {
	cl, err := client.New(cfg.Containerd.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := namespaces.WithNamespace(context.Background(), cfg.Containerd.Namespace)
	n := 0
	err = cl.SnapshotService(cfg.Containerd.Snapshotter).Walk(ctx, func(_ context.Context, i snapshots.Info) error {
		if i.Kind == snapshots.KindCommitted {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
