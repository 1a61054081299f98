package gauntlet

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Scenario 2: oxios-init (the container's PID 1) is SIGKILLed. The
// container exits; the next `oxios start` brings it back; the instance
// lock of the dead run does not block it; the file the daemon wrote to the
// data dir before the kill is intact.
func TestInitKilled(t *testing.T) {
	rw := scenario(t, "2", "oxios-init SIGKILLed")
	e := newEnv(t, setup{})
	cl, ctx := e.client()
	e.mustStart(rw)
	st, sr := e.status()
	if sr.code != 0 || st.PID == 0 {
		rw.fail(t, "status before the kill: %s", sr)
	}
	initPID := int(st.PID)

	// The daemon's own file: wait until it has written a heartbeat beyond
	// its first (a rewrite is in flight or done, never a half file).
	var hb heartbeat
	if !eventually(10*time.Second, 20*time.Millisecond, func() bool {
		h, _, err := e.heartbeat()
		hb = h
		return err == nil && h.State == "ready"
	}) {
		rw.fail(t, "no ready heartbeat in %s", e.dataDir)
	}

	// The exit event from containerd, subscribed before the kill.
	ctr, err := cl.LoadContainer(ctx, e.id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := syscall.Kill(initPID, syscall.SIGKILL); err != nil {
		rw.fail(t, "kill -9 oxios-init (host PID %d): %v", initPID, err)
	}
	select {
	case es := <-exitCh:
		rw.note("task exit event %v after the kill, code %d", time.Since(t0).Round(time.Millisecond), es.ExitCode())
		if es.ExitCode() != 137 {
			rw.errorf(t, "exit code %d, want 137 (SIGKILL)", es.ExitCode())
		}
	case <-time.After(30 * time.Second):
		rw.fail(t, "no exit event 30s after SIGKILL to oxios-init")
	}

	// What the daemon wrote is intact: whole JSON, from the dead run.
	h, raw, err := e.heartbeat()
	lostWhat := "nothing"
	switch {
	case err != nil:
		rw.errorf(t, "heartbeat after the kill: %v (%q)", err, raw)
		lostWhat = "the heartbeat file"
	case h.PID != hb.PID || h.Seq < hb.Seq:
		rw.errorf(t, "heartbeat after the kill is not the dead run's: %+v, before %+v", h, hb)
	}
	if !json.Valid(raw) || bytes.Contains(raw, []byte{0}) {
		rw.errorf(t, "heartbeat file corrupt: %q", raw)
	}
	if st, sr := e.status(); sr.code != 3 || st.State == "running" {
		rw.errorf(t, "status after the kill: want not running (exit 3): %s", sr)
	} else {
		rw.note("status after kill: %s", st.State)
	}

	// The next start: the dead run's task is cleaned, the lock is free.
	r := e.mustStart(rw)
	rw.recovered(time.Since(t0))
	st2, sr2 := e.status()
	if sr2.code != 0 || !st2.Ready || int(st2.PID) == initPID {
		rw.errorf(t, "status after the restart: %s", sr2)
	}
	rw.note("start said: %s", lastLine(r.stderr))
	if err := lockHeldByOther(filepath.Join(e.dataDir, ".oxios-init.lock")); err != nil {
		rw.errorf(t, "instance lock: %v", err)
	}
	h2, _, err := e.heartbeat()
	if err != nil || h2.PID == 0 {
		rw.errorf(t, "heartbeat of the new run: %+v %v", h2, err)
	}
	rw.lost(lostWhat)
}

// lockHeldByOther: the new oxios-init holds the instance lock (flock), so a
// non-blocking shared lock from here must fail.
func lockHeldByOther(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return errors.New(p + " is not held by the running oxios-init")
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return err
	}
	return nil
}
