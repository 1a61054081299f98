//go:build linux

package health

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

func TestExecExitCodes(t *testing.T) {
	for spec, want := range map[string]Status{
		"exec:true":                     Success,
		"exec:false":                    Failure,
		"exec:sh -c 'echo hi; exit 3'":  Failure,
		"exec:/nonexistent/oxios-probe": Unknown,
		"exec:sh -c 'kill -KILL $$'":    Failure,
	} {
		r := probeOnce(t, mustProber(t, spec), 5*time.Second)
		if r.Status != want {
			t.Errorf("%s: %+v, want %v", spec, r, want)
		}
	}
	r := probeOnce(t, mustProber(t, "exec:sh -c 'echo hi; exit 3'"), 5*time.Second)
	if r.Detail != "exit 3: hi" {
		t.Errorf("detail %q", r.Detail)
	}
}

// An exec probe that ignores SIGTERM is killed at its timeout, with
// whatever it forked, and reaped.
func TestExecIgnoresSIGTERM(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "pids")
	spec := "exec:sh -c 'trap \"\" TERM; sleep 30 & echo $$ $! > " + pids + "; wait'"
	start := time.Now()
	r := probeOnce(t, mustProber(t, spec), 300*time.Millisecond)
	el := time.Since(start)
	if r.Status != Failure || !strings.Contains(r.Detail, "timed out") {
		t.Fatalf("SIGTERM-ignoring probe: %+v", r)
	}
	if el > 3*time.Second {
		t.Fatalf("probe returned after %v, timeout 300ms", el)
	}
	b, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	sh, _ := strconv.Atoi(f[0])
	sleeper, _ := strconv.Atoi(f[1])
	// The shell is our child: reaped by Wait, so it is gone, not a zombie.
	if err := syscall.Kill(sh, 0); err == nil && testenv.Alive(sh) {
		t.Errorf("probe shell %d still alive", sh)
	}
	// The grandchild is not ours to wait for; its pidfd turns readable when
	// it exits (ESRCH: it is gone already).
	if fd, err := unix.PidfdOpen(sleeper, 0); err == nil {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, 2000); err != unix.EINTR {
				break
			}
		}
	} else if err != unix.ESRCH {
		t.Fatalf("pidfd_open %d: %v", sleeper, err)
	}
	if testenv.Alive(sleeper) {
		t.Errorf("the probe's grandchild %d survived the timeout", sleeper)
	}
}
