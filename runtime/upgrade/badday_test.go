//go:build linux

package upgrade

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/task"
)

// The state dir fills up, or turns read-only, while the old daemon
// stops: the new daemon's start cannot be recorded, so it never starts
// (its image writes a file into the data dir at once: none is there);
// the old version runs again, the error says why, and the record keeps
// the last step it could write, which the next command recovers from
// once the dir is writable again. The same in the window: the verified
// upgrade cannot be recorded, so it is not kept.
func TestUpgradeUnrecordedStepGoesBack(t *testing.T) {
	for _, tc := range []struct {
		how string
		at  Step
	}{{"full", StepStopping}, {"read-only", StepStopping}, {"full", StepVerifying}} {
		t.Run(tc.how+"-at-"+string(tc.at), func(t *testing.T) {
			var state string
			e := newEnv(t, func(c *config.Config) {
				state = filepath.Join(filepath.Dir(c.Container.DataDir), "statefs")
				os.Mkdir(state, 0o700)
				mountOpts(t, "tmpfs", state, "tmpfs", 0, "size=256k,mode=0700")
				c.Upgrade.StateDir = state
			})
			r := e.connect(t)
			old := running(t, r)
			writes := e.variant(t, "writes", "OXIOS_DEMO_DATA_DIR=/data")
			var fix func()
			rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: writes, Out: testWriter{t},
				OnStep: func(s Step) {
					if s == tc.at {
						fix = breakDir(t, tc.how, state)
					}
				}})
			if !errors.Is(err, ErrUnrecorded) || !errors.Is(err, ErrRolledBack) || rec == nil || rec.Outcome != RolledBack {
				t.Fatalf("upgrade: %v %+v; want a rollback for an unrecorded step", err, rec)
			}
			now := running(t, r)
			if now.Digest != old.Digest || now.Hash != old.Hash {
				t.Fatalf("after the rollback: %+v, want %+v", now, old)
			}
			e.serves(t)
			_, err = os.Stat(filepath.Join(e.cfg.Container.DataDir, "oxios-demo.json"))
			if tc.at == StepStopping && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the new daemon ran though its start was never recorded: %v", err)
			}
			fix()
			if st, err := Load(e.cfg); err != nil || st.InProgress == nil || st.InProgress.Step != tc.at || st.Current != nil {
				t.Fatalf("record: %+v %v; want the upgrade in progress at %s", st, err, tc.at)
			}
			if d, err := r.ImageTarget(context.Background(), PinName(e.cfg.Container.ID, rolePrevious)); err == nil {
				t.Fatalf("a rollback target %s is pinned though none is recorded", d.Digest)
			}
			if rec, err := Recover(context.Background(), e.opts(t, r)); err != nil || rec.Outcome != Recovered {
				t.Fatalf("recover: %v %+v", err, rec)
			}
			if now := running(t, r); now.Digest != old.Digest {
				t.Fatalf("after recovery: %s, want %s", now.Digest, old.Digest)
			}
			e.serves(t)
		})
	}
}

// breakDir makes dir full or read-only; the returned func undoes it.
func breakDir(t *testing.T, how, dir string) func() {
	if how == "read-only" {
		// A read-only bind mount over dir: the upgrade's open lock file
		// stays on the mount below, so the remount is not refused.
		mountOpts(t, dir, dir, "", unix.MS_BIND, "")
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			t.Errorf("remount %s read-only: %v", dir, err)
		}
		return func() { unix.Unmount(dir, 0) }
	}
	filler := filepath.Join(dir, "filler")
	err := os.WriteFile(filler, make([]byte, 1<<20), 0o600)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("fill %s: %v, want ENOSPC", dir, err)
	}
	return func() { os.Remove(filler) }
}

func mountOpts(t *testing.T, src, dst, fstype string, flags uintptr, data string) {
	if err := unix.Mount(src, dst, fstype, flags, data); err != nil {
		t.Fatalf("mount %s on %s: %v", src, dst, err)
	}
	t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
}

// SIGINT or SIGTERM of `oxios upgrade` while the old daemon drains: the
// stop is finished, and the old version started afresh (another task
// PID), ready; not the draining daemon adopted, which would exit a
// moment later and leave none.
func TestUpgradeCancelledWhileDraining(t *testing.T) {
	e := newEnv(t, slowStop("1500ms"))
	r := e.connect(t)
	old := running(t, r)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancelled := make(chan struct{})
	rec, err := Upgrade(ctx, Options{Config: e.cfg, Runtime: r, Archive: e.variant(t, "v2"), Out: testWriter{t},
		OnStep: func(s Step) {
			if s == StepStopping {
				go func() { e.awaitDrain(t, e.drains()); cancel(); close(cancelled) }()
			}
		}})
	select {
	case <-cancelled:
	default:
		t.Fatal("the upgrade ended before the drain was seen")
	}
	if !errors.Is(err, ErrRolledBack) || rec.Outcome != RolledBack || !strings.Contains(rec.Failure, "interrupted") {
		t.Fatalf("upgrade: %v %+v", err, rec)
	}
	now := running(t, r)
	if now.Digest != old.Digest || now.PID == old.PID {
		t.Fatalf("after the cancel: %+v; want the old image in a new task (was %+v)", now, old)
	}
	e.serves(t)
}

// slowStop: the daemon drains for d after its stop signal.
func slowStop(d string) func(*config.Config) {
	return func(c *config.Config) { c.Container.Env = append(c.Container.Env, "OXIOS_DEMO_STOP_DELAY="+d) }
}

// drains counts the stop signals the daemon logged so far.
func (e *env) drains() int { return drainsIn(e.cfg.LogPath()) }

func drainsIn(logPath string) int {
	b, _ := os.ReadFile(logPath)
	return strings.Count(string(b), "stop signal received")
}

// awaitDrain returns once the daemon logged more stop signals than n.
func (e *env) awaitDrain(t testing.TB, n int) {
	if !awaitDrainIn(e.cfg.LogPath(), n) {
		t.Errorf("the daemon never logged its stop signal")
	}
}

// awaitDrainIn: the log is the only sign of a drain from outside the
// container, so it is polled.
func awaitDrainIn(logPath string, n int) bool {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if drainsIn(logPath) > n {
			return true
		}
	}
	return false
}

// An old daemon that does not drain within container.stop_timeout is
// killed (oxios-init's grace, then the host's SIGKILL), and the upgrade
// goes on, its downtime counting the wait. An upgrade SIGKILLed in such
// a stop is recovered by the next command: the dying daemon's stop is
// finished, and the version the upgrade left runs.
func TestUpgradeOldDaemonOutlastsGrace(t *testing.T) {
	e := newEnv(t, slowStop("1h"))
	r := e.connect(t)
	rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: e.variant(t, "v2"), Out: testWriter{t}})
	if err != nil || rec.Outcome != Upgraded {
		t.Fatalf("upgrade: %v %+v", err, rec)
	}
	if grace := e.cfg.Container.StopTimeout.D().Seconds(); rec.DowntimeSeconds < grace {
		t.Fatalf("downtime %.2f s, shorter than the stop_timeout %.0f s the old daemon held out", rec.DowntimeSeconds, grace)
	}
	v2 := running(t, r)
	e.runChild(t, e.variant(t, "v3"), killDraining)
	rec, err = Recover(context.Background(), e.opts(t, r))
	if err != nil || rec.Outcome != Recovered {
		t.Fatalf("recover: %v %+v", err, rec)
	}
	if now := running(t, r); now.Digest != v2.Digest || now.PID == v2.PID {
		t.Fatalf("after recovery: %+v; want v2 in a new task (was %+v)", now, v2)
	}
	e.serves(t)
}

// Commands that come while an upgrade is in its verification window: a
// second upgrade and a rollback are refused (ErrBusy, naming the holder)
// before they stop anything; a recovery (what `oxios start` runs first)
// refuses too, leaving the live record alone; a start waits on the
// start lock and then adopts the daemon the upgrade leaves. One stop in
// all, one daemon at the end.
func TestCommandsDuringWindow(t *testing.T) {
	e := newEnv(t)
	e.cfg.Upgrade.VerifyFor = config.Duration(3 * time.Second)
	r := e.connect(t)
	v2, v3 := e.variant(t, "v2"), e.variant(t, "v3")
	var inWindow *task.Running
	started := make(chan *task.Started, 1)
	rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: v2, Out: testWriter{t},
		OnStep: func(s Step) {
			if s != StepVerifying {
				return
			}
			inWindow = running(t, r)
			refused(t, "upgrade", func() error {
				_, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: v3})
				return err
			})
			refused(t, "rollback", func() error { _, err := Rollback(context.Background(), e.opts(t, r)); return err })
			refused(t, "recover", func() error { _, err := Recover(context.Background(), e.opts(t, r)); return err })
			if st, err := Load(e.cfg); err != nil || st.InProgress == nil || st.InProgress.Step != StepVerifying {
				t.Errorf("the live record was touched: %+v %v", st, err)
			}
			if now := running(t, r); now.PID != inWindow.PID {
				t.Errorf("the new daemon was replaced in the window: PID %d -> %d", inWindow.PID, now.PID)
			}
			go func() {
				st, err := e.connect(t).Start(context.Background())
				if err != nil {
					t.Errorf("start in the window: %v", err)
				}
				started <- st
			}()
		}})
	if err != nil || rec.Outcome != Upgraded {
		t.Fatalf("upgrade: %v %+v", err, rec)
	}
	st := <-started
	if st == nil || !st.Adopted || st.PID != inWindow.PID {
		t.Fatalf("start in the window: %+v; want the upgraded daemon (PID %d) adopted", st, inWindow.PID)
	}
	if now := running(t, r); now.PID != inWindow.PID || now.Digest != rec.To.Digest {
		t.Fatalf("after the upgrade: %+v, want PID %d on %s", now, inWindow.PID, rec.To.Digest)
	}
	if h, _ := History(e.cfg, 0); len(h) != 1 {
		t.Fatalf("history: %+v; want the one upgrade", h)
	}
}

func refused(t *testing.T, what string, fn func() error) {
	t.Helper()
	if err := fn(); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "PID "+strconv.Itoa(os.Getpid())) {
		t.Errorf("%s in the window: %v; want ErrBusy naming PID %d", what, err, os.Getpid())
	}
}

// snapshot_data with the data dir on a tmpfs of its own (a mount point,
// and another filesystem than the state dir): the copy is put back in
// place, the mount stays, and the failed daemon's file is gone.
func TestSnapshotDataOnMountPoint(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		os.MkdirAll(c.Container.DataDir, 0o755)
		// Owned by the image's user, as oxios would make the data dir.
		mountOpts(t, "tmpfs", c.Container.DataDir, "tmpfs", 0, "mode=0750,uid=65532,gid=65532")
		c.Upgrade.SnapshotData = true
	})
	r := e.connect(t)
	intact := e.dataFile(t)
	bad := e.variant(t, "migrates", "OXIOS_DEMO_DATA_DIR=/data", "OXIOS_DEMO_EXIT_AFTER=1500ms", "OXIOS_DEMO_EXIT_CODE=4")
	rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: bad, Out: testWriter{t}})
	if !errors.Is(err, ErrRolledBack) || !rec.DataRestored {
		t.Fatalf("upgrade: %v %+v", err, rec)
	}
	e.checkRestored(t, intact)
	if !isMount(t, e.cfg.Container.DataDir) {
		t.Fatalf("the data dir %s is no longer a mount point", e.cfg.Container.DataDir)
	}
}

// checkRestored: the data dir is the one from before the upgrade, the
// copy is gone, and the old daemon serves.
func (e *env) checkRestored(t *testing.T, intact func()) {
	t.Helper()
	data := e.cfg.Container.DataDir
	if _, err := os.Stat(filepath.Join(data, "oxios-demo.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed daemon's file is still in the data dir: %v", err)
	}
	intact()
	if _, err := os.Stat(newStore(e.cfg).snapshotPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the data copy is left behind: %v", err)
	}
	running(t, e.connect(t))
	e.serves(t)
}

// An upgrade with snapshot_data SIGKILLed in its window, after the new
// daemon wrote to the data dir: the recovery puts the copy back too.
func TestRecoverRestoresSnapshot(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Upgrade.SnapshotData = true })
	e.cfg.Upgrade.VerifyFor = config.Duration(time.Minute)
	r := e.connect(t)
	intact := e.dataFile(t)
	e.runChild(t, e.variant(t, "writes", "OXIOS_DEMO_DATA_DIR=/data"), StepVerifying)
	if _, err := os.Stat(filepath.Join(e.cfg.Container.DataDir, "oxios-demo.json")); err != nil {
		t.Fatalf("the new daemon wrote nothing to the data dir before the kill: %v", err)
	}
	rec, err := Recover(context.Background(), e.opts(t, r))
	if err != nil || rec.Outcome != Recovered || !rec.DataRestored {
		t.Fatalf("recover: %v %+v", err, rec)
	}
	e.checkRestored(t, intact)
}

// containerd restarted (SIGKILL, then started again) in the verification
// window: the task's exit event stream is cut, which is not the task
// exiting. The new daemon runs on and passes its window.
func TestContainerdRestartInWindow(t *testing.T) {
	e := newEnv(t)
	e.cfg.Upgrade.VerifyFor = config.Duration(4 * time.Second)
	r := e.connect(t)
	var inWindow *task.Running
	restarted := make(chan struct{})
	rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: e.variant(t, "v2"), Out: testWriter{t},
		OnStep: func(s Step) {
			if s == StepVerifying {
				inWindow = running(t, r)
				go func() { e.ctrd.Restart(); close(restarted) }()
			}
		}})
	<-restarted
	if err != nil || rec.Outcome != Upgraded {
		t.Fatalf("upgrade with containerd restarted in the window: %v %+v", err, rec)
	}
	if now := running(t, r); now.PID != inWindow.PID {
		t.Fatalf("the new daemon (PID %d) was replaced by PID %d", inWindow.PID, now.PID)
	}
	e.serves(t)
}

// containerd dies in the window and stays down while the new daemon
// fails: the rollback cannot stop it, and nobody can tell what runs. The
// upgrade says so (ErrUnfinished) and leaves its record in progress
// rather than claiming no daemon runs; once containerd is back, the next
// command goes back to the old version.
func TestRollbackWithContainerdDown(t *testing.T) {
	e := newEnv(t)
	e.cfg.Upgrade.VerifyFor = config.Duration(10 * time.Second)
	r := e.connect(t)
	old := running(t, r)
	hang := e.variant(t, "hang", "OXIOS_DEMO_HANG_AFTER=1s")
	rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: hang, Out: testWriter{t},
		OnStep: func(s Step) {
			if s == StepVerifying {
				e.ctrd.Kill9()
			}
		}})
	if !errors.Is(err, ErrUnfinished) || errors.Is(err, ErrNoDaemon) || rec.Outcome != "" {
		t.Fatalf("upgrade: %v %+v; want ErrUnfinished", err, rec)
	}
	if st, err := Load(e.cfg); err != nil || st.InProgress == nil || st.InProgress.Step != StepRollingBack || len(st.History) != 0 {
		t.Fatalf("record: %+v %v; want the upgrade in progress at %s", st, err, StepRollingBack)
	}
	e.ctrd.Restart()
	r = e.connect(t)
	if rec, err := Recover(context.Background(), e.opts(t, r)); err != nil || rec.Outcome != Recovered {
		t.Fatalf("recover: %v %+v", err, rec)
	}
	if now := running(t, r); now.Digest != old.Digest {
		t.Fatalf("after recovery: %s, want %s", now.Digest, old.Digest)
	}
	e.serves(t)
}

// An upgrade cut short between recording its commit and pinning the
// version it left (the from pin still holds that image): a rollback
// still finds the image, and goes back to it.
func TestRollbackFindsUnpinnedPrevious(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	ctx := context.Background()
	old := running(t, r)
	if rec, err := Upgrade(ctx, Options{Config: e.cfg, Runtime: r, Archive: e.variant(t, "v2"), Out: testWriter{t}}); err != nil {
		t.Fatalf("upgrade: %v %+v", err, rec)
	}
	id := e.cfg.Container.ID
	prev, err := r.ImageTarget(ctx, PinName(id, rolePrevious))
	if err == nil {
		err = r.Tag(ctx, PinName(id, roleFrom), prev)
	}
	if err == nil {
		err = r.Untag(ctx, PinName(id, rolePrevious))
	}
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := Rollback(ctx, e.opts(t, r)); err != nil || rec.Outcome != Upgraded {
		t.Fatalf("rollback: %v %+v", err, rec)
	}
	if now := running(t, r); now.Digest != old.Digest {
		t.Fatalf("after the rollback: %s, want %s", now.Digest, old.Digest)
	}
}
