package upgrade

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/a7garden/oxios/runtime/config"
)

func storeConfig(t *testing.T) *config.Config {
	c := config.Default()
	c.Container.ID = "s1"
	c.Upgrade.StateDir = filepath.Join(t.TempDir(), "state")
	return c
}

// One upgrade at a time: a second lock is ErrBusy while the first is
// held, and free once released; InProgress reports only a live holder's
// record, not an interrupted one.
func TestStoreLockAndInProgress(t *testing.T) {
	c := storeConfig(t)
	s := newStore(c)
	unlock, err := s.lock()
	if err != nil {
		t.Fatal(err)
	}
	st := &State{InProgress: &Record{ID: "a", Step: StepVerifying, From: Version{Digest: "sha256:aa"}}}
	if err := s.save(st); err != nil {
		t.Fatal(err)
	}
	if _, err := s.lock(); !errors.Is(err, ErrBusy) {
		t.Fatalf("second lock: %v, want ErrBusy", err)
	}
	if rec, err := InProgress(c); err != nil || rec == nil || rec.Step != StepVerifying {
		t.Fatalf("in progress while held: %+v %v", rec, err)
	}
	unlock()
	if rec, err := InProgress(c); err != nil || rec != nil {
		t.Fatalf("in progress after the holder is gone: %+v %v", rec, err)
	}
	again, err := s.lock()
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again()
}

// History is newest first, at most n, and the file keeps MaxHistory.
func TestHistoryOrderAndCap(t *testing.T) {
	c := storeConfig(t)
	s := newStore(c)
	if err := s.open(); err != nil {
		t.Fatal(err)
	}
	st := &State{}
	for i := 0; i < MaxHistory+5; i++ {
		st.History = append(st.History, Record{ID: strconv.Itoa(i), Outcome: Upgraded})
	}
	if err := s.save(st); err != nil {
		t.Fatal(err)
	}
	h, err := History(c, 3)
	if err != nil || len(h) != 3 || h[0].ID != strconv.Itoa(MaxHistory+4) || h[2].ID != strconv.Itoa(MaxHistory+2) {
		t.Fatalf("history: %+v %v", h, err)
	}
	if all, _ := History(c, 0); len(all) != MaxHistory || all[MaxHistory-1].ID != "5" {
		t.Fatalf("kept %d, oldest %s", len(all), all[len(all)-1].ID)
	}
	if _, err := os.Stat(s.path() + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
}

// A state dir others can write is refused, naming the key; a state file
// that is not JSON is an error naming it, never an empty history.
func TestStateDirChecks(t *testing.T) {
	c := storeConfig(t)
	if err := os.MkdirAll(c.Upgrade.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(c.Upgrade.StateDir, 0o777)
	if _, err := newStore(c).lock(); err == nil || !strings.Contains(err.Error(), "upgrade.state_dir") {
		t.Fatalf("world-writable state dir: %v", err)
	}
	os.Chmod(c.Upgrade.StateDir, 0o700)
	os.WriteFile(newStore(c).path(), []byte("{"), 0o600)
	if _, err := History(c, 0); err == nil || !strings.Contains(err.Error(), newStore(c).path()) {
		t.Fatalf("broken state file: %v", err)
	}
}

func TestStepOrder(t *testing.T) {
	steps := []Step{StepFetch, StepRecorded, StepStopping, StepSnapshot, StepStarting, StepVerifying, StepRollingBack, StepDone}
	for i := 1; i < len(steps); i++ {
		if !before(steps[i-1], steps[i]) || before(steps[i], steps[i-1]) {
			t.Errorf("%s should come before %s", steps[i-1], steps[i])
		}
	}
	r := &Record{Step: StepVerifying}
	r.finish(RolledBack, time.Now())
	if r.Step != StepDone || r.Outcome != RolledBack || r.EndedAt == nil {
		t.Fatalf("finish: %+v", r)
	}
}
