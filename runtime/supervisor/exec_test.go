package supervisor_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
	"github.com/a7garden/oxios/runtime/supervisor"
)

// The Exec tests run the supervisor inside a helper process (this test
// binary again): its reaper calls wait4(-1), which in the test process
// itself would take the exits of every other test's children.

func helperSupervisor(cfg supervisor.Config) *supervisor.Supervisor {
	log := logrus.New()
	log.Out = os.Stderr
	log.Level = logrus.WarnLevel
	sup, err := supervisor.New(cfg, supervisor.Catch(nil), log)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	return sup
}

// helperExecKill runs one probe that ignores SIGTERM and leaves a
// grandchild, with a 300 ms timeout, and prints how it ended:
// "status SIGNAL EXIT ELAPSED_MS".
func helperExecKill() {
	sup := helperSupervisor(supervisor.Config{Command: []string{"true"}})
	script := `trap "" TERM; sleep 30 & echo $$ $! > ` + os.Getenv("OXIOS_SUP_PIDS") + `; wait`
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	ws, err := sup.Exec(ctx, []string{"sh", "-c", script}, io.Discard)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Printf("status %d %d %d\n", int(ws.Signal()), ws.ExitStatus(), time.Since(start).Milliseconds())
	os.Exit(0)
}

// An exec probe that ignores SIGTERM is killed at its timeout with
// whatever it forked (its process group), and its exit comes back from
// the reaper: SIGKILL, within moments of the timeout.
func TestExecProbeKilledAtTimeout(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "pids")
	out := runHelper(t, "execkill", "OXIOS_SUP_PIDS="+pids)
	var sig, code, ms int
	if _, err := fmt.Sscanf(out, "status %d %d %d", &sig, &code, &ms); err != nil {
		t.Fatalf("helper said %q", out)
	}
	if syscall.Signal(sig) != syscall.SIGKILL {
		t.Errorf("probe ended by signal %d, exit %d: want SIGKILL", sig, code)
	}
	if ms < 300 || ms > 3000 {
		t.Errorf("probe returned after %d ms, timeout 300 ms", ms)
	}
	b, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	for _, p := range f {
		pid, _ := strconv.Atoi(p)
		// The grandchild was killed with the group; once its helper is
		// gone it is reaped by whoever inherited it: wait on its pidfd.
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			for {
				if _, err := unix.Poll(fds, 2000); err != unix.EINTR {
					break
				}
			}
			unix.Close(fd)
		}
		if testenv.Alive(pid) {
			t.Errorf("process %d of the timed-out probe survived", pid)
		}
	}
}

// helperExecRace supervises a daemon that makes orphans without pause
// (each reparented to this subreaper and reaped by the same wait4(-1)
// loop) while OXIOS_SUP_PROBES exec probes run, four at a time, each
// exiting with its own code. It prints every probe whose status is wrong,
// then "ok PROBES ORPHANS CODE": the orphans reaped while the probes ran
// and the daemon's exit code after a SIGTERM.
func helperExecRace() {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	daemon := `trap 'exit 7' TERM; while :; do sh -c 'true & true & true &'; done`
	sup := helperSupervisor(supervisor.Config{Command: []string{"sh", "-c", daemon}, Grace: 5 * time.Second})
	code := make(chan int, 1)
	go func() { code <- sup.Run(nil) }()
	n, _ := strconv.Atoi(os.Getenv("OXIOS_SUP_PROBES"))
	before := sup.Reaped()
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				probeOnce(sup, i)
			}
		}()
	}
	wg.Wait()
	orphans := sup.Reaped() - before
	syscall.Kill(os.Getpid(), syscall.SIGTERM) // forwarded to the daemon
	fmt.Printf("ok %d %d %d\n", n, orphans, <-code)
	os.Exit(0)
}

// probeOnce runs probe i, which exits with i%256, and prints what was
// wrong about it, if anything: a lost exit hangs until the 20 s timeout
// (then SIGKILL), a stolen or misrouted one shows another status.
func probeOnce(sup *supervisor.Supervisor, i int) {
	want := i % 256
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, err := sup.Exec(ctx, []string{"sh", "-c", "exit " + strconv.Itoa(want)}, io.Discard)
	if err != nil || !ws.Exited() || ws.ExitStatus() != want {
		fmt.Printf("probe %d: err %v, status %#x, want exit %d\n", i, err, int(ws), want)
	}
}

// A probe's exit is never lost and never taken for another's while the
// daemon's orphans exit around it, all reaped by the one wait4(-1) loop:
// 200 probes, each with its own exit code, against a stream of orphans;
// the daemon's own exit still comes back (7, from its TERM trap).
func TestExecProbeExitsUnderOrphanStorm(t *testing.T) {
	out := runHelper(t, "execrace", "OXIOS_SUP_PROBES=200")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		t.Error(l)
	}
	var probes, code int
	var orphans int64
	if _, err := fmt.Sscanf(last, "ok %d %d %d", &probes, &orphans, &code); err != nil {
		t.Fatalf("helper said %q", out)
	}
	if probes != 200 || code != 7 {
		t.Errorf("%d probes, daemon exit %d: want 200 and 7", probes, code)
	}
	// Without orphans exiting meanwhile the test proves nothing.
	if orphans < 50 {
		t.Errorf("only %d orphans reaped while the probes ran, want at least 50", orphans)
	}
	t.Logf("%d probes, %d orphans reaped meanwhile", probes, orphans)
}

// runHelper runs this test binary as helper mode with env, and returns its
// stdout; it fails the test on a non-zero exit or after 30 s.
func runHelper(t *testing.T, mode string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(append(os.Environ(), "OXIOS_SUP_HELPER="+mode), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// A hung helper's children first: once it is gone they are out of
	// sight, and they hold its stdout open.
	cmd.Cancel = func() error {
		for _, d := range treeOf(cmd.Process.Pid) {
			syscall.Kill(d, syscall.SIGKILL)
		}
		return cmd.Process.Kill()
	}
	cmd.WaitDelay = 2 * time.Second
	var stderr testenv.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s: %v\nstdout:\n%s\nstderr:\n%s", mode, err, out, stderr.String())
	}
	return string(out)
}
