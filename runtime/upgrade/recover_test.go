//go:build linux

package upgrade

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
	"github.com/a7garden/oxios/runtime/config"
)

// An `oxios upgrade` SIGKILLed before each step leaves a record that the
// next command (here Recover, as `oxios start` calls it) brings back to
// exactly one daemon on the old image; before the stop, the old daemon
// was never touched (same PID).
func TestRecoverAfterKillAtEachStep(t *testing.T) {
	for _, step := range []Step{StepFetch, StepRecorded, StepStopping, StepStarting, StepVerifying} {
		t.Run(string(step), func(t *testing.T) {
			e := newEnv(t)
			e.cfg.Upgrade.VerifyFor = config.Duration(30 * time.Second)
			r := e.connect(t)
			intact := e.dataFile(t)
			old := running(t, r)
			e.runChild(t, e.variant(t, "v2"), step)
			if st, _ := Load(e.cfg); st.InProgress == nil || st.InProgress.Step != step {
				t.Fatalf("record after the kill: %+v", st.InProgress)
			}
			rec, err := Recover(context.Background(), e.opts(t, r))
			if err != nil || rec == nil || rec.Outcome != Recovered || !strings.Contains(rec.Note, string(step)) {
				t.Fatalf("recover: %v %+v", err, rec)
			}
			now := running(t, r)
			if now.Digest != old.Digest || now.Hash != old.Hash {
				t.Fatalf("after recovery: %+v, want %+v", now, old)
			}
			if before(step, StepStopping) && now.PID != old.PID {
				t.Fatalf("the old daemon (PID %d) was replaced by PID %d though it was never stopped", old.PID, now.PID)
			}
			e.serves(t)
			intact()
			if again, err := Recover(context.Background(), e.opts(t, r)); again != nil || err != nil {
				t.Fatalf("second recover: %+v %v", again, err)
			}
		})
	}
}

// An upgrade that starts while an interrupted one is on record recovers
// it first, then upgrades.
func TestUpgradeRecoversFirst(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	v2 := e.variant(t, "v2")
	e.runChild(t, v2, StepVerifying)
	rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: v2, Out: testWriter{t}})
	if err != nil || rec.Outcome != Upgraded {
		t.Fatalf("upgrade: %v %+v", err, rec)
	}
	h, _ := History(e.cfg, 2)
	if len(h) != 2 || h[0].Outcome != Upgraded || h[1].Outcome != Recovered {
		t.Fatalf("history %+v", h)
	}
}

// While an upgrade stops the old daemon and starts the new one, at no
// sample are two daemons alive on the data dir. The daemon processes are
// told apart from other tests' by the bind mount of this test's data dir
// in their mount table.
func TestNoTwoDaemonsDuringUpgrade(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	var maxSeen, samples atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := int32(daemonsOn(e.cfg.Container.DataDir))
			if n > maxSeen.Load() {
				maxSeen.Store(n)
			}
			samples.Add(1)
		}
	}()
	rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: e.variant(t, "v2"), Out: testWriter{t}})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("upgrade: %v %+v", err, rec)
	}
	if maxSeen.Load() != 1 || samples.Load() < 100 {
		t.Fatalf("%d samples, at most %d daemons on the data dir at once; want 1", samples.Load(), maxSeen.Load())
	}
}

// daemonsOn counts the processes named oxios-demo whose mount table has
// dataDir mounted.
func daemonsOn(dataDir string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "oxios-demo" {
			continue
		}
		mi, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
		if err == nil && strings.Contains(string(mi), filepath.Base(filepath.Dir(dataDir))+"/data ") {
			n++
		}
	}
	return n
}

// A registry that does not answer: the old daemon is never stopped.
func TestUnreachableRegistryNeverStops(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	old := running(t, r)
	e.cfg.Image.PlainHTTP = true
	// A port free a moment ago: nothing listens there.
	ref := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/oxios/demo:v2"
	rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Ref: ref, Out: testWriter{t}})
	if err == nil || rec == nil || rec.Outcome != Unchanged || !strings.Contains(rec.Failure, "get the new image") {
		t.Fatalf("upgrade: %v %+v", err, rec)
	}
	if now := running(t, r); now.PID != old.PID || now.Digest != old.Digest {
		t.Fatalf("the old daemon was touched: %+v, was %+v", now, old)
	}
	e.serves(t)
}

// snapshot_data: a new daemon that writes to the data dir and then
// crashes leaves the data dir as it was before the upgrade.
func TestSnapshotDataRestoredOnRollback(t *testing.T) {
	e := newEnv(t)
	e.cfg.Upgrade.SnapshotData = true
	r := e.connect(t)
	intact := e.dataFile(t)
	migrated := filepath.Join(e.cfg.Container.DataDir, "oxios-demo.json")
	bad := e.variant(t, "migrates", "OXIOS_DEMO_DATA_DIR=/data", "OXIOS_DEMO_EXIT_AFTER=1500ms", "OXIOS_DEMO_EXIT_CODE=4")
	rec, err := Upgrade(context.Background(), Options{Config: e.cfg, Runtime: r, Archive: bad, Out: testWriter{t}})
	if !errors.Is(err, ErrRolledBack) || !rec.DataRestored {
		t.Fatalf("upgrade: %v %+v", err, rec)
	}
	if _, err := os.Stat(migrated); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed daemon's file %s is still in the data dir: %v", migrated, err)
	}
	failed := filepath.Join(e.cfg.Upgrade.StateDir, e.cfg.Container.ID+".data-failed", "oxios-demo.json")
	if _, err := os.Stat(failed); err != nil {
		t.Fatalf("the failed daemon's data is not kept: %v", err)
	}
	intact()
	running(t, r)
	e.serves(t)
}
