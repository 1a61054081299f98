package supervisor_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
	"github.com/a7garden/oxios/runtime/supervisor"
)

// Every exit code 0..255 comes back unchanged (one oxios-init per code,
// with -s so that no warning clutters the output).
func TestExitCodesAll256(t *testing.T) {
	bin := initBin(t)
	for code := 0; code < 256; code++ {
		cmd := exec.Command(bin, "-s", "--", "/bin/sh", "-c", "exit "+strconv.Itoa(code))
		got := testenv.ExitCode(t, cmd.Run())
		if got != code {
			t.Fatalf("child exit %d: oxios-init exited %d", code, got)
		}
	}
}

// A child killed by signal N gives 128+N, for every signal whose default
// action ends the process.
func TestExitCodeFatalSignals(t *testing.T) {
	bin := initBin(t)
	fatal := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 25, 26, 27, 29, 30, 31}
	for n := 34; n <= 64; n++ {
		fatal = append(fatal, n)
	}
	for _, n := range fatal {
		// ulimit -c 0: no core file for the core-dumping ones.
		cmd := exec.Command(bin, "-s", "--", "/bin/sh", "-c", "ulimit -c 0; kill -"+strconv.Itoa(n)+" $$; sleep 5")
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 128+n {
			t.Fatalf("child killed by signal %d: oxios-init ended with %v, want exit %d", n, err, 128+n)
		}
	}
}

func TestExitCodeNotFoundAndNotExecutable(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\nexit 0\n"), 0o644)
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"-s", "--", "/nonexistent/cmd"}, 127},
		{[]string{"-s", "--", "no-such-command-oxios"}, 127},
		{[]string{"-s", "--", noexec}, 126},
		{[]string{"-s", "--", dir}, 126},
		{[]string{"-s", "-e", "127", "--", "/nonexistent/cmd"}, 0},
	}
	for _, c := range cases {
		code, _, _ := runInit(t, 10*time.Second, false, nil, c.args...)
		if code != c.want {
			t.Errorf("oxios-init %q: exit %d, want %d", c.args, code, c.want)
		}
	}
	// Found in PATH but not executable: 126, as execvp reports it.
	code, _, _ := runInit(t, 10*time.Second, false, []string{"PATH=" + dir}, "-s", "noexec")
	if code != 126 {
		t.Errorf("non-executable in PATH: exit %d, want 126", code)
	}
}

func TestRemapExit(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  []string
		want int
	}{
		{[]string{"-s", "-e", "3", "-e", "143", "--", "sh", "-c", "exit 3"}, nil, 0},
		{[]string{"-s", "-e", "3", "--", "sh", "-c", "exit 4"}, nil, 4},
		{[]string{"-s", "-e143", "--", "sh", "-c", "kill $$"}, nil, 0},
		{[]string{"-s", "--", "sh", "-c", "exit 5"}, []string{"OXIOS_INIT_REMAP_EXIT=4,5"}, 0},
	} {
		code, _, _ := runInit(t, 10*time.Second, false, c.env, c.args...)
		if code != c.want {
			t.Errorf("oxios-init %q %q: exit %d, want %d", c.args, c.env, code, c.want)
		}
	}
}

// forwardedSignals is what oxios-init must forward: 1..31 except KILL,
// STOP, CHLD, SIGPIPE (TestSIGPIPENotForwarded) and SIGPROF, which the Go
// runtime keeps for its profiler; then 35..64 (32..34 are the C
// libraries' and Go does not catch them).
func forwardedSignals() []int {
	var out []int
	for n := 1; n <= 64; n++ {
		switch syscall.Signal(n) {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGPIPE, syscall.SIGPROF, syscall.SIGTERM, syscall.SIGINT:
			continue
		}
		if n >= 32 && n <= 34 {
			continue
		}
		out = append(out, n)
	}
	return out
}

// Every forwarded signal arrives at the child, SIGURG included (the build
// has async preemption off, so a SIGURG can only come from outside).
func TestEverySignalForwarded(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			p := startInit(t, pid1, helperEnv("sigrecv", "OXIOS_SUP_PREFIX=child"), "-s", "--grace", "500ms", "--", os.Args[0])
			p.expect("child ready", 10*time.Second)
			for _, n := range forwardedSignals() {
				p.signal(syscall.Signal(n))
				p.expect(fmt.Sprintf("child sig %d", n), 5*time.Second)
			}
			// SIGTERM last: forwarded, and starts the stop.
			p.signal(syscall.SIGTERM)
			p.expect("child sig 15", 5*time.Second)
			p.signal(syscall.SIGTERM) // a second one is forwarded too
			p.expect("child sig 15", 5*time.Second)
			// The helper survives TERM: KILL at the grace period.
			if code := p.wait(10 * time.Second); code != 137 {
				t.Errorf("exit %d, want 137", code)
			}
		})
	}
}

// SIGPIPE is not forwarded: Go hands oxios-init the SIGPIPE of its own
// write to a socket whose peer reset it (a probe, an endpoint client) just
// as one sent with kill(2), and forwarding it would kill a daemon that
// wrote nothing. Both signals after it are forwarded; a forwarded SIGPIPE
// would reach the child before the SIGTERM sent after SIGUSR1 arrived.
func TestSIGPIPENotForwarded(t *testing.T) {
	p := startInit(t, false, helperEnv("sigrecv", "OXIOS_SUP_PREFIX=child", "OXIOS_SUP_EXIT_ON=15"), "-s", "--", os.Args[0])
	p.expect("child ready", 10*time.Second)
	p.signal(syscall.SIGPIPE)
	p.signal(syscall.SIGUSR1)
	p.expect("child sig 10", 5*time.Second)
	p.signal(syscall.SIGTERM)
	for {
		switch l := p.expect("child ", 5*time.Second); l {
		case "child sig 13":
			t.Fatal("SIGPIPE was forwarded to the child")
		case "child drained":
			return
		}
	}
}

// -g: a signal reaches the grandchild in the child's process group;
// without -g only the child gets it.
func TestKillProcessGroup(t *testing.T) {
	p := startInit(t, false, helperEnv("tree", "OXIOS_SUP_EXIT_ON=15"), "-s", "-g", "--grace", "1s", "--", os.Args[0])
	seen := map[string]bool{}
	for len(seen) < 2 {
		l := p.expect("ready", 10*time.Second)
		seen[strings.Fields(l)[0]] = true
	}
	p.signal(syscall.SIGUSR1)
	got := map[string]bool{}
	for len(got) < 2 {
		l := p.expect("sig 10", 5*time.Second)
		got[strings.Fields(l)[0]] = true
	}
	// TINI_KILL_PROCESS_GROUP is the same switch.
	q := startInit(t, false, append(helperEnv("tree", "OXIOS_SUP_EXIT_ON=15"), "TINI_KILL_PROCESS_GROUP=1"), "-s", "--grace", "1s", "--", os.Args[0])
	q.expect("ready", 10*time.Second)
	q.expect("ready", 10*time.Second)
	q.signal(syscall.SIGUSR2)
	q.expect("sig 12", 5*time.Second)
	q.expect("sig 12", 5*time.Second)
}

// -r: the rewritten signal is what arrives; TO=0 drops; the stop signal
// is rewritten too.
func TestRewrite(t *testing.T) {
	p := startInit(t, false, helperEnv("sigrecv", "OXIOS_SUP_PREFIX=child", "OXIOS_SUP_EXIT_ON=2"),
		"-s", "-r", "USR1:USR2", "--rewrite", "HUP:0", "-r", "15:2", "--", os.Args[0])
	p.expect("child ready", 10*time.Second)
	p.signal(syscall.SIGHUP) // dropped
	p.signal(syscall.SIGUSR1)
	if l := p.expect("child sig", 5*time.Second); l != "child sig 12" {
		t.Fatalf("after HUP (dropped) and USR1 (as USR2) the child saw %q first, want USR2", l)
	}
	p.signal(syscall.SIGTERM)
	p.expect("child sig 2", 5*time.Second)
	if code := p.wait(5 * time.Second); code != 0 {
		t.Errorf("exit %d, want 0 (the child drained on SIGINT)", code)
	}
}

// The real daemon drains only on SIGINT and dies at once on SIGTERM: with
// -r 15:2 a SIGTERM stop lets it drain and exit 0; without, it dies (143).
func TestStopDrainsOnSIGINT(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  []string
		want int
	}{
		{[]string{"-r", "15:2"}, nil, 0},
		{nil, []string{"OXIOS_INIT_REWRITE=15:2"}, 0},
		{nil, nil, 143},
	} {
		env := append(helperEnv("sigrecv", "OXIOS_SUP_PREFIX=child", "OXIOS_SUP_EXIT_ON=2", "OXIOS_SUP_TERM_DIES=1"), c.env...)
		args := append(append([]string{"-s"}, c.args...), "--", os.Args[0])
		p := startInit(t, true, env, args...)
		p.expect("child ready", 10*time.Second)
		p.signal(syscall.SIGTERM)
		if code := p.wait(10 * time.Second); code != c.want {
			t.Errorf("oxios-init %q %q stopped: exit %d, want %d", c.args, c.env, code, c.want)
		}
	}
}

// A child that ignores SIGTERM is killed when the grace period ends: 137,
// not before the grace period.
func TestGraceKill(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		grace := 300 * time.Millisecond
		p := startInit(t, pid1, nil, "-s", "--grace", grace.String(), "--", "sh", "-c", `trap "" TERM; echo ready; exec sleep 1000`)
		p.expect("ready", 10*time.Second)
		start := time.Now()
		p.signal(syscall.SIGTERM)
		code := p.wait(10 * time.Second)
		el := time.Since(start)
		if code != 137 {
			t.Errorf("pid1=%v: exit %d, want 137", pid1, code)
		}
		if el < grace || el > grace+2*time.Second {
			t.Errorf("pid1=%v: killed after %s, want the grace period %s", pid1, el, grace)
		}
	}
}

// Orphans left behind by a child that exits are cleared (TERM, and KILL at
// the grace period for one that ignores TERM), and oxios-init exits with
// the child's code.
func TestLeftoversCleared(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			mark := fmt.Sprintf("oxios-leftover-%d-%v", os.Getpid(), pid1)
			grace := 400 * time.Millisecond
			start := time.Now()
			code, _, _ := runInit(t, 20*time.Second, pid1, nil, "-s", "--grace", grace.String(), "--", "bash", "-c",
				`(exec -a `+mark+` sleep 1000 &); (trap "" TERM; exec -a `+mark+` sleep 1000) & sleep 0.1; exit 3`)
			el := time.Since(start)
			if code != 3 {
				t.Errorf("exit %d, want the child's 3", code)
			}
			if el < grace {
				t.Errorf("exited after %s: the TERM-ignoring orphan cannot have had its grace period %s", el, grace)
			}
			if pids := findProcs(mark); len(pids) > 0 {
				for _, p := range pids {
					syscall.Kill(p, syscall.SIGKILL)
				}
				t.Errorf("leftover processes survive oxios-init: %v", pids)
			}
		})
	}
}

// findProcs lists processes whose command line starts with name.
func findProcs(name string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.HasPrefix(string(b), name) {
			out = append(out, pid)
		}
	}
	return out
}

// 1,000 orphans are reaped, as PID 1 and as a subreaper.
func TestReapThousandOrphans(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			// Each (true &) leaves one orphan: the subshell exits before
			// its background child. The child then waits until no
			// orphan is left (its own /proc view of zombies would not see
			// them as its children).
			script := `for i in $(seq 1000); do (true &); done; exit 7`
			code, _, stderr := runInit(t, 60*time.Second, pid1, nil, "-s", "-w", "--", "sh", "-c", script)
			if code != 7 {
				t.Fatalf("exit %d, want 7", code)
			}
			if n := strings.Count(stderr, "reaped zombie process"); n != 1000 {
				t.Fatalf("reaped %d orphans, want 1000", n)
			}
		})
	}
}

// 2,000 orphans reparented at once, in the same moment as the main
// child's exit (the reaper's second thread joins such a drain): every
// orphan is reaped and the main child's status is not mistaken for one.
func TestReapMassReparent(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			env := helperEnv("zombies", "OXIOS_SUP_ZOMBIES=2000")
			code, _, stderr := runInit(t, 60*time.Second, pid1, env, "-s", "-w", "--", os.Args[0])
			if code != 9 {
				t.Fatalf("exit %d, want the main child's 9", code)
			}
			if n := strings.Count(stderr, "reaped zombie process"); n != 2000 {
				t.Fatalf("reaped %d orphans, want 2000", n)
			}
		})
	}
}

// The coalesced-SIGCHLD race: the orphaned sleep and the main child exit
// together; 1,000 runs, not one hang.
func TestCoalescedSIGCHLDRace(t *testing.T) {
	bin := initBin(t)
	n := 1000
	if testing.Short() {
		n = 100
	}
	deadline := time.Now().Add(4 * time.Minute)
	for i := 0; i < n; i++ {
		cmd := exec.Command("unshare", "--pid", "--fork", "--kill-child", bin, "--",
			"bash", "-c", "bash -c 'sleep 0.01 & kill -9 $BASHPID'; sleep 0.0087")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("run %d hung", i)
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d runs in the time budget", i)
		}
	}
}

// The warning when neither PID 1 nor a subreaper, once, on stderr, saying
// what breaks as tini's does; none otherwise.
func TestNotPID1Warning(t *testing.T) {
	const w = "is not PID 1 and is not a child subreaper"
	_, stdout, stderr := runInit(t, 10*time.Second, false, nil, "--", "true")
	if strings.Count(stderr, w) != 1 || strings.Contains(stdout, w) {
		t.Errorf("not PID 1: want the warning once on stderr; stderr=%q stdout=%q", stderr, stdout)
	}
	if !strings.Contains(stderr, "zombie reaping won't work") {
		t.Errorf("the warning does not say what breaks: %q", stderr)
	}
	for _, c := range []struct {
		pid1 bool
		env  []string
		args []string
	}{
		{false, nil, []string{"-s", "--", "true"}},
		{false, []string{"TINI_SUBREAPER="}, []string{"--", "true"}},
		{false, []string{"OXIOS_INIT_SUBREAPER=1"}, []string{"--", "true"}},
		{true, nil, []string{"--", "true"}},
	} {
		_, _, stderr := runInit(t, 10*time.Second, c.pid1, c.env, c.args...)
		if strings.Contains(stderr, w) {
			t.Errorf("%+v: unexpected warning %q", c, stderr)
		}
	}
}

// A signal sent while oxios-init starts is not lost: the child is stopped
// by it instead of running forever.
func TestSignalDuringStartup(t *testing.T) {
	bin := initBin(t)
	for i := 0; i < 50; i++ {
		cmd := exec.Command(bin, "-s", "--", "sleep", "1000")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// At once: before, during or after handler installation.
		if i%2 == 1 {
			time.Sleep(time.Duration(i) * 100 * time.Microsecond)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			// Either the runtime had not installed handlers yet (killed
			// by TERM, no child started) or the TERM reached sleep (143).
			if !(ws.Signaled() && ws.Signal() == syscall.SIGTERM) && ws.ExitStatus() != 143 {
				t.Fatalf("run %d: status %v", i, ws)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("run %d: SIGTERM sent during start-up was lost (still running)", i)
		}
	}
}

// The signal state the child inherits, as docs/pid1.md documents it:
// oxios-init is started with every signal blocked and every signal a Go
// launcher can ignore ignored, and the child's mask and ignored set are
// exactly what passes through a Go PID 1. A blocked signal stays blocked
// unless the Go runtime unblocks it in every thread; an ignored one stays
// ignored only where the runtime had not yet replaced the SIG_IGN when
// main ran. Also: the working directory, and only the descriptors
// inherited on purpose (fd 7 here), not the instance lock's.
func TestInheritance(t *testing.T) {
	bin := initBin(t)
	dir := t.TempDir()
	var block, ignore []int
	for n := 1; n <= 64; n++ {
		if s := syscall.Signal(n); s == syscall.SIGKILL || s == syscall.SIGSTOP {
			continue
		}
		block = append(block, n)
		if n != int(syscall.SIGCHLD) {
			ignore = append(ignore, n)
		}
	}
	got := map[string]string{}
	// Run once with grep as the child, a C program that touches no signal
	// state (a Go child would install handlers over the SIG_IGNs, a shell
	// clears its mask), and once with the Go helper for cwd and fds.
	for _, child := range [][]string{{"/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}, {os.Args[0]}} {
		args := append([]string{bin, "-s", "--lock", filepath.Join(dir, "instance.lock"), "--"}, child...)
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "OXIOS_SUP_HELPER=launch",
			"OXIOS_SUP_BLOCK="+joinInts(block), "OXIOS_SUP_IGNORE="+joinInts(ignore),
			"OXIOS_SUP_DIR="+dir, "OXIOS_SUP_ARGS="+strings.Join(args, "\x1f"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(l)
			if len(f) > 0 {
				got[strings.TrimSuffix(f[0], ":")] = strings.Join(f[1:], " ")
			}
		}
	}
	// Unblocked by the runtime: the signals it must see to work at all
	// (SIGPROF, 32..34, the synchronous ones) and those whose default it
	// implements itself (exit or crash).
	notBlocked := []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP,
		syscall.SIGABRT, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGTERM, syscall.SIGSTKFLT,
		syscall.SIGCHLD, syscall.SIGPROF, syscall.SIGSYS, 32, 33, 34}
	// Still ignored when main runs: SIGHUP and SIGINT (the runtime
	// respects an inherited SIG_IGN for them), the job-control signals
	// (the runtime installs nothing for them until Notify), and 32 and 34
	// (reserved, never touched; 33 the runtime takes for its all-threads
	// system calls).
	stillIgnored := []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, 32, 34}
	if want := maskOf(block) &^ maskOf(sigInts(notBlocked)); got["SigBlk"] != fmt.Sprintf("%016x", want) {
		t.Errorf("child SigBlk %s, want %016x (every signal blocked at start but %v)", got["SigBlk"], want, notBlocked)
	}
	// 32..34 cannot be ignored by the launcher, but whatever ignored them
	// for this test process (CI's parent) passes through unchanged.
	inherited := ownSigIgn(t) & maskOf([]int{32, 33, 34})
	if want := maskOf(sigInts(stillIgnored)) | inherited; got["SigIgn"] != fmt.Sprintf("%016x", want) {
		t.Errorf("child SigIgn %s, want %016x (of those ignored at start, exactly %v)", got["SigIgn"], want, stillIgnored)
	}
	if got["cwd"] != dir {
		t.Errorf("child cwd %q, want %q", got["cwd"], dir)
	}
	if got["fds"] != "0 1 2 7" {
		t.Errorf("child descriptors %q, want \"0 1 2 7\" (7 inherited on purpose)", got["fds"])
	}
}

// ownSigIgn is this process's ignored-signal mask (/proc/self/status).
func ownSigIgn(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "SigIgn:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatal("no SigIgn in /proc/self/status")
	return 0
}

func maskOf(sigs []int) uint64 {
	var m uint64
	for _, n := range sigs {
		m |= 1 << (n - 1)
	}
	return m
}

func sigInts(sigs []syscall.Signal) []int {
	var out []int
	for _, s := range sigs {
		out = append(out, int(s))
	}
	return out
}

func joinInts(v []int) string {
	var s []string
	for _, n := range v {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, " ")
}

// backoffSlack is how much later than its delay a restart may be seen: an
// exit noticed, a fork, an exec of sh and of date, each of which can wait
// for a CPU on a loaded 2-core CI box (-p 1, but other jobs run). 250 ms
// was exceeded there (865 ms for a 400 ms delay); the exact check is the
// delay oxios-init logs, the wall clock only bounds it.
const backoffSlack = time.Second

// loggedDelays returns the delays of oxios-init's "restarting sh in D"
// log lines (-v), in order.
func loggedDelays(t *testing.T, stderr string) []time.Duration {
	t.Helper()
	var out []time.Duration
	for _, l := range strings.Split(stderr, "\n") {
		_, rest, ok := strings.Cut(l, "restarting sh in ")
		if !ok {
			continue
		}
		d, err := time.ParseDuration(strings.Fields(rest)[0])
		if err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, d)
	}
	return out
}

// Restart delays double from --backoff-initial up to --backoff-max: the
// delays oxios-init chose are checked exactly, the starts' wall-clock gaps
// with an exact lower bound (a delay is never shorter) and backoffSlack
// above.
func TestBackoffTimings(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "starts")
	// Fails five times, then succeeds (on-failure stops restarting).
	script := `date +%s%N >> ` + log + `; [ $(wc -l < ` + log + `) -ge 6 ] && exit 0; exit 1`
	code, _, stderr := runInit(t, 30*time.Second, false, nil, "-s", "-v", "--restart", "on-failure",
		"--backoff-initial", "100ms", "--backoff-max", "400ms", "--", "sh", "-c", script)
	if code != 0 {
		t.Fatalf("exit %d, want 0 after the sixth start; stderr %s", code, stderr)
	}
	b, _ := os.ReadFile(log)
	var ts []int64
	for _, f := range strings.Fields(string(b)) {
		n, _ := strconv.ParseInt(f, 10, 64)
		ts = append(ts, n)
	}
	want := []time.Duration{100, 200, 400, 400, 400}
	if len(ts) != 6 {
		t.Fatalf("%d starts, want 6", len(ts))
	}
	logged := loggedDelays(t, stderr)
	if len(logged) != len(want) {
		t.Fatalf("logged delays %v, want %d of them", logged, len(want))
	}
	for i, w := range want {
		gap := time.Duration(ts[i+1] - ts[i])
		w *= time.Millisecond
		if logged[i] != w {
			t.Errorf("delay before start %d: oxios-init chose %s, want %s", i+2, logged[i], w)
		}
		if gap < w || gap > w+backoffSlack {
			t.Errorf("delay before start %d: %s, want %s (+%s)", i+2, gap, w, backoffSlack)
		}
	}
}

// A run that lasted --backoff-reset starts the delays over: every run
// lasts 200ms, longer than the 150ms reset, so each delay is the initial
// 100ms (gaps of ~300ms), where doubling would give 300, 400, 600, 1000ms.
// The delays oxios-init logs are checked exactly; the last gap is bounded
// with backoffSlack.
func TestBackoffReset(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "starts")
	script := `date +%s%N >> ` + log + `; [ $(wc -l < ` + log + `) -ge 5 ] && exit 0; sleep 0.2; exit 1`
	code, _, stderr := runInit(t, 30*time.Second, false, nil, "-s", "-v", "--restart", "on-failure",
		"--backoff-initial", "100ms", "--backoff-max", "10s", "--backoff-reset", "150ms", "--", "sh", "-c", script)
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	b, _ := os.ReadFile(log)
	f := strings.Fields(string(b))
	if len(f) != 5 {
		t.Fatalf("%d starts, want 5", len(f))
	}
	a, _ := strconv.ParseInt(f[3], 10, 64)
	c, _ := strconv.ParseInt(f[4], 10, 64)
	for i, d := range loggedDelays(t, stderr) {
		if d != 100*time.Millisecond {
			t.Errorf("delay %d: %s, want the initial 100ms (reset after each 200ms run)", i+1, d)
		}
	}
	if gap := time.Duration(c - a); gap > 300*time.Millisecond+backoffSlack {
		t.Errorf("last gap %s: the delay was not reset (want ~300ms +%s)", gap, backoffSlack)
	}
}

// The stop signal ends a backoff wait at once, with the last exit code.
func TestBackoffInterruptedByStop(t *testing.T) {
	p := startInit(t, true, nil, "-v", "--restart", "always", "--backoff-initial", "30s", "--", "sh", "-c", "echo started; exit 4")
	p.expect("started", 10*time.Second)
	// The first restart waits 30s; wait until oxios-init is in it.
	testenv.WaitFor(t, "the condition", 5*time.Second, func() bool { return strings.Contains(p.stderr.String(), "restarting") })
	start := time.Now()
	p.signal(syscall.SIGTERM)
	code := p.wait(5 * time.Second)
	if code != 4 {
		t.Errorf("exit %d, want the last child's 4", code)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("stop during a 30s backoff took %s", el)
	}
}

// Restart policy always restarts a child that exited 0; the fourth run
// stops oxios-init itself, which ends the restarts.
func TestRestartAlways(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "starts")
	script := `echo x >> ` + log + `; [ $(wc -l < ` + log + `) -ge 4 ] && { kill -TERM $PPID; exec sleep 1000; }; exit 0`
	code, _, _ := runInit(t, 20*time.Second, false, []string{"OXIOS_INIT_RESTART=always", "OXIOS_INIT_BACKOFF_INITIAL=10ms"}, "-s", "--", "sh", "-c", script)
	b, _ := os.ReadFile(log)
	if n := strings.Count(string(b), "x"); n != 4 {
		t.Errorf("%d starts, want 4", n)
	}
	if code != 143 {
		t.Errorf("exit %d, want 143 (the last child stopped by the forwarded SIGTERM)", code)
	}
	// never (the default) does not restart a failure.
	os.Remove(log)
	code, _, _ = runInit(t, 20*time.Second, false, nil, "-s", "--", "sh", "-c", `echo x >> `+log+`; exit 1`)
	b, _ = os.ReadFile(log)
	if n := strings.Count(string(b), "x"); n != 1 || code != 1 {
		t.Errorf("policy never: %d starts, exit %d; want 1 start, exit 1", n, code)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"15": 15, "TERM": 15, "SIGTERM": 15, "sigint": 2, "RTMIN": 34, "RTMIN+3": 37, "RTMAX-1": 63, "SIGRTMAX": 64, "URG": 23} {
		got, err := supervisor.ParseSignal(in, false)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "65", "NOPE", "RTMIN+31", "", "RTMAX--1", "RTMIN+-1", "RTMIN++1", "RTMAX-31"} {
		if _, err := supervisor.ParseSignal(in, false); err == nil {
			t.Errorf("ParseSignal(%q): no error", in)
		}
	}
	if s, err := supervisor.ParseSignal("0", true); err != nil || s != 0 {
		t.Errorf("ParseSignal(0, allowZero) = %v, %v", s, err)
	}
}

// A second oxios-init on the same --lock refuses and names the first;
// --stale / OXIOS_INIT_STALE paths are removed once the lock is held.
func TestInstanceLockAndStale(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "oxios-init.lock")
	pidf := filepath.Join(dir, "daemon.pid")
	other := filepath.Join(dir, "other.lock")
	os.WriteFile(pidf, []byte("1\n"), 0o644)
	os.WriteFile(other, []byte("1\n"), 0o644)
	p := startInit(t, false, []string{"OXIOS_INIT_STALE=" + other}, "-s", "--lock", lock, "--stale", pidf, "--", "sh", "-c", "echo up; exec sleep 1000")
	p.expect("up", 10*time.Second)
	for _, f := range []string{pidf, other} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("stale %s not removed", f)
		}
	}
	code, _, stderr := runInit(t, 10*time.Second, false, []string{"OXIOS_INIT_LOCK=" + lock}, "-s", "--", "true")
	if code == 0 || !strings.Contains(stderr, "held by a live instance") || !strings.Contains(stderr, fmt.Sprintf("pid=%d", p.initPID())) {
		t.Errorf("second instance: exit %d, stderr %q; want a refusal naming pid %d", code, stderr, p.initPID())
	}
	p.signal(syscall.SIGTERM)
	p.wait(10 * time.Second)
	if code, _, stderr := runInit(t, 10*time.Second, false, nil, "-s", "--lock", lock, "--", "true"); code != 0 {
		t.Errorf("after the first exited: exit %d, %s", code, stderr)
	}
}

// `oxios-init probe readiness` asks the running supervisor (address from
// OXIOS_INIT_HEALTH_LISTEN) and exits 1 until the daemon listens on its
// port, 0 after. The daemon itself listens: a listener of another process
// does not make it ready.
func TestProbeCommand(t *testing.T) {
	bin := initBin(t)
	hp, dp := testenv.FreePort(t), testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", hp)
	env := helperEnv("listen", fmt.Sprintf("OXIOS_SUP_PORT=%d", dp), "OXIOS_INIT_HEALTH_LISTEN="+addr,
		fmt.Sprintf("OXIOS_INIT_READINESS=tcp://127.0.0.1:%d", dp), "OXIOS_INIT_READINESS_PERIOD=50ms")
	p := startInit(t, false, env, "-s", "--", os.Args[0])
	p.expect("up", 10*time.Second)
	probe := func() int {
		cmd := exec.Command(bin, "probe", "readiness")
		cmd.Env = append(os.Environ(), "OXIOS_INIT_HEALTH_LISTEN="+addr)
		return testenv.ExitCode(t, cmd.Run())
	}
	testenv.WaitFor(t, "the condition", 5*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if code := probe(); code != 1 {
		t.Fatalf("probe readiness before the daemon listens: exit %d, want 1", code)
	}
	p.signal(syscall.SIGUSR1) // forwarded: the daemon starts listening
	p.expect("listening", 10*time.Second)
	testenv.WaitFor(t, "the condition", 10*time.Second, func() bool { return probe() == 0 })
}

// A failing liveness probe makes the supervisor restart the daemon
// (health.Hooks.Restart -> Supervisor.Restart), under the restart policy.
func TestLivenessRestart(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "starts")
	dead := testenv.FreePort(t) // nothing listens: liveness fails
	p := startInit(t, false, []string{
		fmt.Sprintf("OXIOS_INIT_LIVENESS=tcp://127.0.0.1:%d", dead),
		"OXIOS_INIT_LIVENESS_PERIOD=50ms", "OXIOS_INIT_LIVENESS_FAILURE_THRESHOLD=2",
		"OXIOS_INIT_RESTART=on-failure", "OXIOS_INIT_BACKOFF_INITIAL=10ms", "OXIOS_INIT_GRACE=1s",
	}, "-s", "--", "sh", "-c", `echo x >> `+log+`; echo started; exec sleep 1000`)
	p.expect("started", 10*time.Second)
	p.expect("started", 10*time.Second) // restarted after the liveness failures
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 143 {
		t.Errorf("exit %d after stop, want 143", code)
	}
}

// -p: when oxios-init's parent dies, it gets the signal (here SIGTERM),
// which stops it and its child.
func TestParentDeathSignal(t *testing.T) {
	bin := initBin(t)
	mark := fmt.Sprintf("oxios-pdeath-%d", os.Getpid())
	// The parent shell starts oxios-init in the background and exits once
	// oxios-init's child runs: oxios-init sets -p before it starts the
	// child, so the signal is armed by then.
	cmd := exec.Command("bash", "-c", bin+` -s -p SIGTERM -- bash -c 'exec -a `+mark+` sleep 1000' &
		for i in $(seq 1000); do pgrep -f '^`+mark+`' >/dev/null && break; sleep 0.01; done; echo $!`)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	t.Cleanup(func() {
		// Only on failure is anything left: oxios-init first, so that it
		// does not restart or wait on what is killed next.
		if !t.Failed() {
			return
		}
		if testenv.Alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, p := range findProcs(mark) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	})
	testenv.WaitFor(t, "the condition", 10*time.Second, func() bool {
		return !testenv.Alive(pid) && len(findProcs(mark)) == 0
	})
}

// A build that did not link asyncpreemptoff=1 (plain `go build`, without
// the Makefile's INIT_GODEBUG) cannot tell the runtime's own preemption
// SIGURG from an external one, so it forwards none; the Makefile's build
// forwards an external one (TestEverySignalForwarded).
func TestSIGURGNotForwardedWithoutLinkedDefault(t *testing.T) {
	initBin(t) // the module builds
	plain := filepath.Join(t.TempDir(), "oxios-init-plain")
	build := exec.Command("go", "build", "-trimpath", "-o", plain, "./cmd/oxios-init")
	build.Dir = testenv.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(plain, "-s", "-vvv", "--grace", "100ms", "--", os.Args[0])
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv("sigrecv", "OXIOS_SUP_PREFIX=child")...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr testenv.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A stop, so that oxios-init reaps its child (KILL at the grace
		// period: the helper survives TERM).
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	ready := make(chan bool)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "child ready") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("child not ready within 10s")
	}
	cmd.Process.Signal(syscall.SIGURG)
	// oxios-init logs (-vvv) what it did with it, either way.
	testenv.WaitFor(t, "the condition", 10*time.Second, func() bool { return strings.Contains(stderr.String(), "SIGURG") })
	if strings.Contains(stderr.String(), "forwarded SIGURG") {
		t.Errorf("SIGURG forwarded by a build without asyncpreemptoff=1:\n%s", stderr.String())
	}
}
