package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/initstress"
	"github.com/a7garden/oxios/internal/testenv"
)

// The compatibility tests run the Debian tini and dumb-init and oxios-init
// (bin/oxios-init, invoked as tini and dumb-init through links, and as
// oxios-init) side by side on the same child, and compare what the child
// and the shell see. Where oxios-init differs on purpose, the test asserts
// the difference the README documents.

// inits are the programs compared.
type inits struct {
	tini, dumbInit     string // Debian's
	asTini, asDumbInit string // oxios-init through links of those names
	oxios              string
	child              string // internal/initstress/child
}

// compatInits links oxios-init as tini and dumb-init and builds the child,
// in t's temporary directory.
func compatInits(t *testing.T) inits {
	t.Helper()
	in := inits{
		tini:     testenv.RequireTool(t, "tini"),
		dumbInit: testenv.RequireTool(t, "dumb-init"),
		oxios:    testenv.Bin(t, "oxios-init"),
	}
	dir := t.TempDir()
	in.asTini, in.asDumbInit = filepath.Join(dir, "tini"), filepath.Join(dir, "dumb-init")
	for _, l := range []string{in.asTini, in.asDumbInit} {
		if err := os.Symlink(in.oxios, l); err != nil {
			t.Fatal(err)
		}
	}
	in.child = initstress.BuildChild(t)
	return in
}

// exitOf runs argv to completion and returns its exit code (128+N after
// signal N).
func exitOf(t *testing.T, env []string, argv ...string) int {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%q did not exit within 10s", argv)
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Exit codes: the child's status, 128+N after signal N, -e remapping;
// 127 and 126 for a command not found and not executable, where dumb-init
// exits 2 for both and oxios-init keeps tini's codes under every name.
func TestCompatExitCodes(t *testing.T) {
	in := compatInits(t)
	notExec := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(notExec, []byte("not a program\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		args        []string // options, "--", the command
		tini, dumb  int      // the controls' codes; -1: not applicable
		oxios       int      // oxios-init's, under every name
		dumbDiffers bool
	}{
		{"exit 3", []string{"--", "sh", "-c", "exit 3"}, 3, 3, 3, false},
		{"exit 255", []string{"--", "sh", "-c", "exit 255"}, 255, 255, 255, false},
		{"killed by KILL", []string{"--", "sh", "-c", "kill -9 $$"}, 137, 137, 137, false},
		{"killed by TERM", []string{"--", "sh", "-c", "kill -15 $$"}, 143, 143, 143, false},
		{"not found", []string{"--", "/nonexistent/cmd"}, 127, 2, 127, true},
		{"not executable", []string{"--", notExec}, 126, 2, 126, true},
		{"-e 3 remaps 3", []string{"-e", "3", "--", "sh", "-c", "exit 3"}, 0, -1, 0, false},
		{"-e 3 keeps 4", []string{"-e", "3", "--", "sh", "-c", "exit 4"}, 4, -1, 4, false},
	}
	for _, c := range cases {
		if got := exitOf(t, nil, append([]string{in.tini, "-s"}, c.args...)...); got != c.tini {
			t.Errorf("tini %s: exit %d, want %d", c.name, got, c.tini)
		}
		for _, ox := range []string{in.asTini, in.oxios} {
			if got := exitOf(t, nil, append([]string{ox, "-s"}, c.args...)...); got != c.oxios {
				t.Errorf("%s %s: exit %d, want %d (tini %d)", filepath.Base(ox), c.name, got, c.oxios, c.tini)
			}
		}
		if c.dumb < 0 {
			continue
		}
		if got := exitOf(t, nil, append([]string{in.dumbInit}, c.args...)...); got != c.dumb {
			t.Errorf("dumb-init %s: exit %d, want %d", c.name, got, c.dumb)
		}
		want := c.dumb
		if c.dumbDiffers {
			want = c.oxios // documented: 127/126 as under tini, not dumb-init's 2
		}
		if got := exitOf(t, nil, append([]string{in.asDumbInit}, c.args...)...); got != want {
			t.Errorf("oxios-init as dumb-init %s: exit %d, want %d (dumb-init %d)", c.name, got, want, c.dumb)
		}
	}
}

// -V and --version exit 0: dumb-init knows both, tini only --version;
// oxios-init accepts both under every name.
func TestCompatVersion(t *testing.T) {
	in := compatInits(t)
	for _, c := range []struct {
		argv []string
		want int
	}{
		{[]string{in.dumbInit, "-V"}, 0},
		{[]string{in.dumbInit, "--version"}, 0},
		{[]string{in.tini, "--version"}, 0},
		{[]string{in.tini, "-V"}, 1}, // tini: invalid option
		{[]string{in.asDumbInit, "-V"}, 0},
		{[]string{in.asDumbInit, "--version"}, 0},
		{[]string{in.asTini, "--version"}, 0},
		{[]string{in.asTini, "-V"}, 0},
		{[]string{in.oxios, "-V"}, 0},
	} {
		if got := exitOf(t, nil, c.argv...); got != c.want {
			t.Errorf("%s %s: exit %d, want %d", c.argv[0], c.argv[1], got, c.want)
		}
	}
}

// running is an init under test with the child (and maybe a grandchild).
type running struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan []string
	done  chan struct{}
}

// place is where a process runs, from its ready line.
type place struct{ pid, pgid, sid int }

func startCompat(t *testing.T, env []string, argv ...string) *running {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), "CHILD_PDEATHSIG=1"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := watch(t, cmd, out)
	t.Cleanup(r.stop)
	return r
}

// watch reads the started cmd's lines from out (split into fields) and
// notes its exit.
func watch(t *testing.T, cmd *exec.Cmd, out io.Reader) *running {
	r := &running{t: t, cmd: cmd, lines: make(chan []string, 64), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.lines <- strings.Fields(sc.Text())
		}
		close(r.lines)
	}()
	go func() { cmd.Wait(); close(r.done) }()
	return r
}

// stop sends the init SIGTERM and waits for it, SIGKILL after 5 s.
func (r *running) stop() {
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
}

// next returns the next line of who ("child", "grandchild") whose second
// field is what, skipping the others.
func (r *running) next(who, what string) []string {
	r.t.Helper()
	tm := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-r.lines:
			if !ok {
				r.t.Fatalf("%s: stdout closed waiting for %s %s", r.cmd.Args, who, what)
			}
			if len(f) >= 3 && f[0] == who && f[1] == what {
				return f
			}
		case <-tm:
			r.t.Fatalf("%s: no %s %s line within 10s", r.cmd.Args, who, what)
		}
	}
}

func (r *running) ready(who string) (place, string) {
	r.t.Helper()
	f := r.next(who, "ready")
	if len(f) < 6 {
		r.t.Fatalf("ready line %q: want PID PGID SID CWD", f)
	}
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	return place{n(f[2]), n(f[3]), n(f[4])}, f[5]
}

func (r *running) sigNum(who string) int {
	r.t.Helper()
	n, _ := strconv.Atoi(r.next(who, "sig")[2])
	return n
}

// observed is what one init did with the tree child -> grandchild.
type observed struct {
	ownSession, ownGroup, initsGroup bool // the child's placement
	cwdKept                          bool
	childGot, grandchildGot          bool // a SIGUSR1 sent to the init
}

// observe starts argv on a child with a grandchild in its group, sends
// SIGUSR1 to the init and reports who got it. Once the child reports it,
// a signal to the group has been generated for the grandchild too, whose
// default action ends it: /proc shows it pending, dying or dead.
func observe(t *testing.T, env []string, argv ...string) observed {
	t.Helper()
	r := startCompat(t, append(env, "CHILD_TREE=1"), argv...)
	child, cwd := r.ready("child")
	gc, _ := strconv.Atoi(r.next("grandchild", "ready")[2])
	wd, _ := os.Getwd()
	o := observed{
		ownSession: child.sid == child.pid,
		ownGroup:   child.pgid == child.pid,
		initsGroup: child.pgid == syscall.Getpgrp(),
		cwdKept:    cwd == wd,
	}
	if hit, why := signalled(gc); hit {
		t.Fatalf("grandchild %d already %s before any signal", gc, why)
	}
	r.cmd.Process.Signal(syscall.SIGUSR1)
	o.childGot = r.sigNum("child") == int(syscall.SIGUSR1)
	o.grandchildGot, _ = signalled(gc)
	return o
}

// signalled reports whether a fatal signal has reached pid: it is gone,
// a zombie, exiting, or has one pending.
func signalled(pid int) (bool, string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true, "gone"
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "State":
			if strings.HasPrefix(v, "Z") || strings.HasPrefix(v, "X") {
				return true, "dead"
			}
		case "SigPnd", "ShdPnd":
			if m, _ := strconv.ParseUint(v, 16, 64); m != 0 {
				return true, k + "=" + v
			}
		}
	}
	return false, ""
}

// Where the child runs and who gets a forwarded signal: tini (child only;
// -g its group), dumb-init (its own session and the whole group; -c and
// DUMB_INIT_SETSID=0 the child only, in dumb-init's own group), each
// against oxios-init under the same name; oxios-init under its own name
// behaves as tini. No init changes the working directory (dumb-init 1.2.5
// does not chdir).
func TestCompatSignalTargetsAndPlacement(t *testing.T) {
	in := compatInits(t)
	tiniChild := observed{ownGroup: true, cwdKept: true, childGot: true}
	tiniGroup := observed{ownGroup: true, cwdKept: true, childGot: true, grandchildGot: true}
	dumbSession := observed{ownSession: true, ownGroup: true, cwdKept: true, childGot: true, grandchildGot: true}
	dumbSingle := observed{initsGroup: true, cwdKept: true, childGot: true}
	for _, c := range []struct {
		name          string
		control, ours []string
		env           []string
		want          observed
	}{
		{"tini", []string{in.tini, "-s"}, []string{in.asTini, "-s"}, nil, tiniChild},
		{"tini -g", []string{in.tini, "-s", "-g"}, []string{in.asTini, "-s", "-g"}, nil, tiniGroup},
		{"oxios-init", []string{in.tini, "-s"}, []string{in.oxios, "-s"}, nil, tiniChild},
		{"TINI_KILL_PROCESS_GROUP", []string{in.tini, "-s"}, []string{in.asTini, "-s"}, []string{"TINI_KILL_PROCESS_GROUP=1"}, tiniGroup},
		{"dumb-init", []string{in.dumbInit}, []string{in.asDumbInit}, nil, dumbSession},
		{"dumb-init -c", []string{in.dumbInit, "-c"}, []string{in.asDumbInit, "-c"}, nil, dumbSingle},
		{"dumb-init --single-child", []string{in.dumbInit, "--single-child"}, []string{in.asDumbInit, "--single-child"}, nil, dumbSingle},
		{"DUMB_INIT_SETSID=0", []string{in.dumbInit}, []string{in.asDumbInit}, []string{"DUMB_INIT_SETSID=0"}, dumbSingle},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctl := observe(t, c.env, append(c.control, "--", in.child)...)
			got := observe(t, c.env, append(c.ours, "--", in.child)...)
			if ctl != c.want {
				t.Errorf("control %s: %+v, want %+v (the documented behaviour)", c.control[0], ctl, c.want)
			}
			if got != ctl {
				t.Errorf("%s: oxios-init %+v, control %+v", c.name, got, ctl)
			}
		})
	}
}

// dumb-init's -r FROM:TO, as dumb-init and as oxios-init: SIGUSR1 arrives
// as SIGUSR2; rewritten to 0 it is dropped (the next signal is the first
// the child sees).
func TestCompatRewrite(t *testing.T) {
	in := compatInits(t)
	for _, init := range []string{in.dumbInit, in.asDumbInit} {
		r := startCompat(t, nil, init, "-r", "10:12", in.child)
		r.ready("child")
		r.cmd.Process.Signal(syscall.SIGUSR1)
		if n := r.sigNum("child"); n != int(syscall.SIGUSR2) {
			t.Errorf("%s -r 10:12: child got %d, want 12", init, n)
		}
		r = startCompat(t, nil, init, "-r", "10:0", in.child)
		r.ready("child")
		r.cmd.Process.Signal(syscall.SIGUSR1)
		r.cmd.Process.Signal(syscall.SIGUSR2)
		if n := r.sigNum("child"); n != int(syscall.SIGUSR2) {
			t.Errorf("%s -r 10:0: child's first signal %d, want 12 (USR1 dropped)", init, n)
		}
	}
}

// procState is the state letter of /proc/PID/stat ("S", "T", ...).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "gone"
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return f[0]
}

// waitState polls /proc until pid is in state (no event tells a third
// process that another stopped) and returns the state last seen.
func waitState(pid int, state string) string {
	var st string
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if st = procState(pid); st == state {
			break
		}
	}
	return st
}

// SIGTSTP sent to the init: tini forwards it and keeps running; dumb-init
// forwards it (as SIGSTOP in session mode) and then stops itself, with or
// without -c. A SIGCONT to the init then resumes the child too.
//
// With -c the child gets a plain SIGTSTP in the init's own process group,
// and the kernel discards it when that group is orphaned (as it is when
// the test runs without a job-control shell, in CI): there the child's
// state is whatever the control's was, the init's stop is still required.
func TestCompatJobControl(t *testing.T) {
	in := compatInits(t)
	for _, c := range []struct {
		control, ours []string
		initStops     bool
		childAsCtl    bool // the child's stop depends on the session: compare
	}{
		{[]string{in.tini, "-s"}, []string{in.asTini, "-s"}, false, false},
		{[]string{in.dumbInit}, []string{in.asDumbInit}, true, false},
		{[]string{in.dumbInit, "-c"}, []string{in.asDumbInit, "-c"}, true, true},
	} {
		ctlStopped := true
		for i, argv := range [][]string{c.control, c.ours} {
			r := startCompat(t, nil, append(argv, "sleep", "1000")...)
			initPID := r.cmd.Process.Pid
			child := waitChild(t, initPID)
			r.cmd.Process.Signal(syscall.SIGTSTP)
			st := procState(initPID)
			if c.initStops {
				st = waitState(initPID, "T")
			}
			if (st == "T") != c.initStops {
				t.Errorf("%q: init state %s after SIGTSTP; want stopped: %v", argv, st, c.initStops)
			}
			want := "T"
			if c.childAsCtl && !ctlStopped {
				want = "S"
			}
			got := waitState(child, "T")
			if i == 0 && c.childAsCtl {
				ctlStopped = got == "T"
			} else if got != want {
				t.Errorf("%q: child state %s after SIGTSTP, want %s (the control's: stopped %v)", argv, got, want, ctlStopped)
			}
			r.cmd.Process.Signal(syscall.SIGCONT)
			if st := waitState(child, "S"); st != "S" {
				t.Errorf("%q: child state %s after SIGCONT to the init, want S (running again)", argv, st)
			}
		}
	}
}

// waitChild returns the init's child once it has exec'd sleep.
func waitChild(t *testing.T, pid int) int {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		// A Go init forks from any of its threads.
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, tk := range tasks {
			b, _ := os.ReadFile(tk)
			for _, f := range strings.Fields(string(b)) {
				c, _ := strconv.Atoi(f)
				if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); strings.TrimSpace(string(comm)) == "sleep" {
					return c
				}
			}
		}
	}
	t.Fatalf("no sleep child of %d within 5s", pid)
	return 0
}

// onTerminal is what a child sees when its init leads a session whose
// controlling terminal is stdin (a container started with a TTY).
type onTerminal struct {
	childTTY       bool // the child has a controlling terminal
	childLeadsTTY  bool // ... and leads the session the terminal belongs to
	childForegound bool // its process group is the terminal's foreground
	initForeground bool // the init's group is (dumb-init -c: one job)
	firstSignal    int  // the first signal the child reports: SIGUSR1, not a HUP from the hand-over
}

// Under a terminal: tini puts the child in the foreground in the init's
// session; dumb-init gives the terminal up and the child's new session
// takes it, without passing on the kernel's SIGHUP of that hand-over;
// dumb-init -c leaves the child in the init's foreground group.
func TestCompatTerminal(t *testing.T) {
	in := compatInits(t)
	for _, c := range []struct {
		control, ours []string
		want          onTerminal
	}{
		{[]string{in.tini, "-s"}, []string{in.asTini, "-s"}, onTerminal{childTTY: true, childForegound: true, firstSignal: 10}},
		{[]string{in.dumbInit}, []string{in.asDumbInit}, onTerminal{childTTY: true, childLeadsTTY: true, childForegound: true, firstSignal: 10}},
		{[]string{in.dumbInit, "-c"}, []string{in.asDumbInit, "-c"}, onTerminal{childTTY: true, childForegound: true, initForeground: true, firstSignal: 10}},
	} {
		ctl := runOnTerminal(t, append(c.control, "--", in.child)...)
		got := runOnTerminal(t, append(c.ours, "--", in.child)...)
		if ctl != c.want {
			t.Errorf("control %q: %+v, want %+v", c.control, ctl, c.want)
		}
		if got != ctl {
			t.Errorf("%q: %+v, control %q %+v", c.ours, got, c.control, ctl)
		}
	}
}

func runOnTerminal(t *testing.T, argv ...string) onTerminal {
	t.Helper()
	master, slave := openPTY(t)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "CHILD_PDEATHSIG=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	r := watch(t, cmd, master)
	defer func() {
		r.stop()
		master.Close()
	}()
	child, _ := r.ready("child")
	var o onTerminal
	mfd := int(master.Fd())
	sid, err1 := unix.IoctlGetInt(mfd, unix.TIOCGSID)
	fg, err2 := unix.IoctlGetInt(mfd, unix.TIOCGPGRP)
	if err1 != nil || err2 != nil {
		t.Fatalf("terminal's session and foreground group: %v, %v", err1, err2)
	}
	o.childTTY = procField(child.pid, 6) != "0" // tty_nr
	o.childLeadsTTY = sid == child.pid
	o.childForegound = fg == child.pgid
	o.initForeground = fg == cmd.Process.Pid
	cmd.Process.Signal(syscall.SIGUSR1)
	o.firstSignal = r.sigNum("child")
	return o
}

// procField is field n (0-based, as in proc(5)) of /proc/PID/stat.
func procField(pid, n int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if n-2 >= len(f) {
		return ""
	}
	return f[n-2]
}

// openPTY opens a new pseudo-terminal pair, neither end as our
// controlling terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil && testenv.InCI() {
		t.Fatalf("no pseudo-terminals, and CI must run this test: %v", err)
	}
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/pts/%d: %v", n, err)
	}
	return master, slave
}

// An init run as a foreground job on a terminal with `stty tostop` puts
// its child in the foreground and must still be able to write its log
// (tini and dumb-init block SIGTTOU, which allows it); oxios-init used to
// spin for ever in the write, answered with SIGTTOU again and again.
func TestCompatLogsAsBackgroundJob(t *testing.T) {
	in := compatInits(t)
	for _, argv := range [][]string{
		{in.tini, "-s", "-vvv"},
		{in.asTini, "-s", "-vv"},
		{in.oxios, "-s", "-vv"},
	} {
		if got := runAsJob(t, in.child, append(argv, "--", "sh", "-c", "sleep 0.1")...); got != "job exit 0" {
			t.Errorf("%q as a job with tostop: %q, want job exit 0", argv, got)
		}
	}
}

// runAsJob runs argv as a foreground job of a job-control shell (the
// child in CHILD_JOB mode) on a new terminal, and returns the shell's
// verdict.
func runAsJob(t *testing.T, shell string, argv ...string) string {
	t.Helper()
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command(shell, argv...)
	cmd.Env = append(os.Environ(), "CHILD_JOB=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its session's leader group, and the job's
		for _, c := range childrenOf(cmd.Process.Pid) {
			syscall.Kill(-c, syscall.SIGKILL)
		}
		cmd.Wait()
	}()
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(master)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "job ") {
				got <- l
				return
			}
		}
		got <- "terminal closed"
	}()
	select {
	case l := <-got:
		return l
	case <-time.After(10 * time.Second):
		return "still running after 10s (a write answered with SIGTTOU for ever)"
	}
}

func childrenOf(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, tk := range tasks {
		b, _ := os.ReadFile(tk)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// Not PID 1 and not a subreaper: tini warns that zombie reaping won't
// work, dumb-init says nothing; oxios-init does as the name it runs under.
func TestCompatNotPID1Warning(t *testing.T) {
	in := compatInits(t)
	for _, c := range []struct {
		argv []string
		warn bool
	}{
		{[]string{in.tini, "--", "true"}, true},
		{[]string{in.asTini, "--", "true"}, true},
		{[]string{in.oxios, "--", "true"}, true},
		{[]string{in.dumbInit, "true"}, false},
		{[]string{in.asDumbInit, "true"}, false},
	} {
		var errb strings.Builder
		cmd := exec.Command(c.argv[0], c.argv[1:]...)
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%q: %v", c.argv, err)
		}
		if got := strings.Contains(errb.String(), "zombie reaping won't work"); got != c.warn {
			t.Errorf("%q: warned %v, want %v; stderr %q", c.argv, got, c.warn, errb.String())
		}
	}
}
