//go:build linux

package health

import (
	"context"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// osSpawner runs exec probes with os/exec. In this test process no PID-1
// reaper competes for exits; oxios-init's Spawner, the supervisor, has its
// own tests (runtime/supervisor: TestExecProbe*).
type osSpawner struct{}

func (osSpawner) Exec(ctx context.Context, argv []string, out io.Writer) (syscall.WaitStatus, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 100 * time.Millisecond
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	cmd.Wait()
	close(done)
	return cmd.ProcessState.Sys().(syscall.WaitStatus), nil
}

func mustExecProber(t *testing.T, spec string, sp Spawner) Prober {
	t.Helper()
	s, err := ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProber(s, sp)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecExitCodes(t *testing.T) {
	for spec, want := range map[string]Status{
		"exec:true":                     Success,
		"exec:false":                    Failure,
		"exec:sh -c 'echo hi; exit 3'":  Failure,
		"exec:/nonexistent/oxios-probe": Unknown,
		"exec:sh -c 'kill -KILL $$'":    Failure,
	} {
		r := probeOnce(t, mustExecProber(t, spec, osSpawner{}), 5*time.Second)
		if r.Status != want {
			t.Errorf("%s: %+v, want %v", spec, r, want)
		}
	}
	for spec, want := range map[string]string{
		"exec:sh -c 'echo hi; exit 3'": "exit 3: hi",
		"exec:sh -c 'kill -KILL $$'":   "killed by SIGKILL",
	} {
		if r := probeOnce(t, mustExecProber(t, spec, osSpawner{}), 5*time.Second); r.Detail != want {
			t.Errorf("%s: detail %q, want %q", spec, r.Detail, want)
		}
	}
}

// A probe that outlives its timeout is a failure, not Unknown; one whose
// monitor stops it (the daemon exited) is Unknown, not a failure.
func TestExecTimeoutAndCancel(t *testing.T) {
	p := mustExecProber(t, "exec:sleep 30", osSpawner{})
	start := time.Now()
	r := probeOnce(t, p, 200*time.Millisecond)
	if r.Status != Failure || !strings.Contains(r.Detail, "timed out") {
		t.Errorf("timed-out probe: %+v, want a failure that says it timed out", r)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("timed-out probe returned after %v, timeout 200ms", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := p.Probe(ctx, deadlineIn(5*time.Second)); r.Status != Unknown {
		t.Errorf("cancelled probe: %+v, want unknown", r)
	}
}

// Without a Spawner (NewProber, not the monitor) an exec probe cannot run,
// and says so instead of forking on its own.
func TestExecWithoutSpawner(t *testing.T) {
	r := probeOnce(t, mustProber(t, "exec:true"), time.Second)
	if r.Status != Unknown || !strings.Contains(r.Detail, "spawner") {
		t.Errorf("exec probe without a Spawner: %+v, want unknown naming the spawner", r)
	}
}
