package gauntlet

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

// Scenario 1: containerd is SIGKILLed and restarted while the daemon runs
// under an attached `oxios start --foreground`. The task survives (the
// shim holds it); `status` never says "stopped" (during the outage it
// says containerd is unreachable, LSB 4); the foreground CLI reconnects
// and does not report an exit; a SIGTERM to it afterwards still stops the
// daemon gracefully.
func TestContainerdDies(t *testing.T) {
	rw := scenario(t, "1", "containerd dies mid-run")
	e := newEnv(t, setup{})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fg := e.command(ctx, "start", "--foreground")
	stdout, _ := fg.StdoutPipe()
	var stderr testenv.Buffer
	fg.Stderr = &stderr
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	// "oxios started" on stdout is the ready event (printed once ready).
	started := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		started <- line
		io.Copy(io.Discard, br)
		exited <- fg.Wait()
	}()
	select {
	case line := <-started:
		if !strings.HasPrefix(line, "oxios started") {
			rw.fail(t, "foreground start: %q; stderr: %s", line, stderr.String())
		}
	case <-time.After(60 * time.Second):
		rw.fail(t, "foreground start not ready after 60s; stderr: %s", stderr.String())
	}
	st, sr := e.status()
	if sr.code != 0 || !st.Ready {
		rw.fail(t, "status before the outage: %s", sr)
	}
	hb0, _, _ := e.heartbeat()

	e.ctrd.Kill9()
	// During the outage: the daemon serves, status is "unknown", not stopped.
	if code, err := e.get("/health", 2*time.Second); err != nil || code != 200 {
		rw.errorf(t, "daemon not serving while containerd is down: %d %v", code, err)
	}
	// Both facts: containerd is unreachable, and the daemon still answers.
	if _, r := e.status(); r.code != 4 || !strings.Contains(r.stderr, "not reachable") || !strings.Contains(r.stderr, "the daemon still answers on") {
		rw.errorf(t, "status during the outage: want exit 4, \"not reachable\" and that the daemon still answers: %s", r)
	}
	select {
	case err := <-exited:
		rw.fail(t, "foreground exited during the outage: %v; stderr: %s", err, stderr.String())
	default:
	}

	e.ctrd.Restart()
	t0 := time.Now()
	var st2 statusJSON
	if !eventually(30*time.Second, 20*time.Millisecond, func() bool {
		s, r := e.status()
		st2 = s
		return r.code == 0 && s.Ready
	}) {
		rw.fail(t, "status not running+ready 30s after containerd restarted: %+v", st2)
	}
	rw.recovered(time.Since(t0))
	if st2.PID != st.PID {
		rw.errorf(t, "task PID changed across the outage: %d -> %d", st.PID, st2.PID)
	}
	// The attached CLI notices the outage and waits again (its progress
	// line); it must still be attached, not reporting an exit.
	if !eventually(10*time.Second, 20*time.Millisecond, func() bool {
		return strings.Contains(stderr.String(), "reconnecting")
	}) {
		rw.errorf(t, "the foreground CLI never said it reconnects; stderr: %s", stderr.String())
	}
	// ... and that the outage is over: the journal's last word is not
	// "reconnecting".
	if !eventually(10*time.Second, 20*time.Millisecond, func() bool {
		return strings.Contains(stderr.String(), "containerd is back after")
	}) {
		rw.errorf(t, "the foreground CLI never said containerd is back; stderr: %s", stderr.String())
	}
	select {
	case err := <-exited:
		rw.fail(t, "foreground exited after the outage: %v; stderr: %s", err, stderr.String())
	default:
	}
	if strings.Contains(stderr.String(), "exited with code") {
		rw.errorf(t, "foreground reported an exit: %s", stderr.String())
	}
	// The same daemon kept running: its heartbeat (every second) advances.
	var hb1 heartbeat
	eventually(5*time.Second, 50*time.Millisecond, func() bool {
		hb1, _, _ = e.heartbeat()
		return hb1.Seq > hb0.Seq
	})
	lost := "nothing"
	if hb1.PID != hb0.PID || hb1.Seq <= hb0.Seq {
		lost = "the daemon's run (heartbeat restarted)"
		rw.errorf(t, "heartbeat %+v -> %+v", hb0, hb1)
	}

	// Still attached: SIGTERM stops the daemon (SIGINT drain, exit 0).
	fg.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if err != nil && errors.As(err, &ee) {
			rw.errorf(t, "foreground after SIGTERM: exit %d; stderr: %s", ee.ExitCode(), stderr.String())
		}
	case <-time.After(30 * time.Second):
		rw.fail(t, "foreground did not stop 30s after SIGTERM")
	}
	if st, r := e.status(); r.code != 3 || st.State != "stopped" {
		rw.errorf(t, "status after the foreground stop: %s", r)
	}
	rw.note("same PID %d, heartbeat seq %d -> %d", st.PID, hb0.Seq, hb1.Seq)
	rw.lost(lost)
}
