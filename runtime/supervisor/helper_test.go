package supervisor_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

// TestMain doubles as the helper processes that oxios-init supervises
// (OXIOS_SUP_HELPER selects one), so the tests need no other binary than
// bin/oxios-init and standard tools.
func TestMain(m *testing.M) {
	mode := os.Getenv("OXIOS_SUP_HELPER")
	if mode == "sigrecv" || mode == "tree" || mode == "listen" {
		// These helpers run until signalled. Should their oxios-init be
		// SIGKILLed (a test's cleanup timeout, the test binary dying), they
		// die with it instead of living on, reparented, as stray
		// supervisor.test processes. (Go never ends the thread that forked
		// them while oxios-init lives: no goroutine of it exits locked.)
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
	}
	switch mode {
	case "":
		os.Exit(m.Run())
	case "sigrecv":
		helperSigrecv(os.Getenv("OXIOS_SUP_PREFIX"))
	case "tree":
		helperTree()
	case "launch":
		helperLaunch()
	case "inspect":
		helperInspect()
	case "zombies":
		helperZombies()
	case "listen":
		helperListen()
	case "execkill":
		helperExecKill()
	case "execrace":
		helperExecRace()
	}
	os.Exit(99)
}

// helperSigrecv prints "PREFIX ready", then "PREFIX sig N" for every
// signal it receives. OXIOS_SUP_EXIT_ON=N exits 0 after signal N
// ("drained"); OXIOS_SUP_TERM_DIES=1 leaves SIGTERM at its default action.
func helperSigrecv(prefix string) {
	exitOn, _ := strconv.Atoi(os.Getenv("OXIOS_SUP_EXIT_ON"))
	termDies := os.Getenv("OXIOS_SUP_TERM_DIES") == "1"
	c := make(chan os.Signal, 512)
	var sigs []os.Signal
	for n := 1; n <= 64; n++ {
		s := syscall.Signal(n)
		if s == syscall.SIGKILL || s == syscall.SIGSTOP || s == syscall.SIGCHLD || (n >= 32 && n < 35) || s == syscall.SIGPROF {
			continue
		}
		if s == syscall.SIGTERM && termDies {
			continue
		}
		sigs = append(sigs, s)
	}
	signal.Notify(c, sigs...)
	if termDies {
		signal.Reset(syscall.SIGTERM)
	}
	fmt.Fprintf(os.Stdout, "%s ready %d\n", prefix, os.Getpid())
	for s := range c {
		n := int(s.(syscall.Signal))
		fmt.Fprintf(os.Stdout, "%s sig %d\n", prefix, n)
		if n == exitOn {
			fmt.Fprintf(os.Stdout, "%s drained\n", prefix)
			os.Exit(0)
		}
	}
}

// helperListen prints "up", and on SIGUSR1 listens on 127.0.0.1:
// OXIOS_SUP_PORT and prints "listening"; it runs until killed.
func helperListen() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	fmt.Println("up")
	<-c
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("OXIOS_SUP_PORT"))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	defer ln.Close()
	fmt.Println("listening")
	select {}
}

// helperTree starts a grandchild (same process group) and is a sigrecv
// itself: -g must reach both.
func helperTree() {
	gc := exec.Command(os.Args[0])
	gc.Env = append(os.Environ(), "OXIOS_SUP_HELPER=sigrecv", "OXIOS_SUP_PREFIX=grandchild")
	gc.Stdout = os.Stdout
	if err := gc.Start(); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	helperSigrecv("child")
}

// helperLaunch sets up what oxios-init must pass on, in the launching
// thread, and execs oxios-init in it (execve keeps the thread's mask and
// every SIG_IGN): OXIOS_SUP_BLOCK and OXIOS_SUP_IGNORE list signal numbers,
// OXIOS_SUP_DIR is the working directory, and fd 7 is left open without
// close-on-exec on purpose.
func helperLaunch() {
	runtime.LockOSThread()
	var set unix.Sigset_t
	for _, f := range strings.Fields(os.Getenv("OXIOS_SUP_BLOCK")) {
		n, _ := strconv.Atoi(f)
		set.Val[(n-1)/64] |= 1 << ((n - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	for _, f := range strings.Fields(os.Getenv("OXIOS_SUP_IGNORE")) {
		n, _ := strconv.Atoi(f)
		if n >= 32 && n <= 34 {
			// signal.Ignore leaves the runtime's reserved signals alone.
			ignoreRaw(n)
			continue
		}
		signal.Ignore(syscall.Signal(n))
	}
	// Only fd 7 may be passed on: mark everything this process inherited
	// (from go test, from a shell) close-on-exec first.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	if err := unix.Dup2(2, 7); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	if err := os.Chdir(os.Getenv("OXIOS_SUP_DIR")); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	args := strings.Split(os.Getenv("OXIOS_SUP_ARGS"), "\x1f")
	env := []string{"OXIOS_SUP_HELPER=inspect", "PATH=" + os.Getenv("PATH")}
	err := syscall.Exec(args[0], args, env)
	fmt.Println("ERR exec", err)
	os.Exit(1)
}

// ignoreRaw sets signal n to SIG_IGN with the system call (a kernel
// struct sigaction whose other fields are zero: the handler comes first on
// amd64 and arm64). This helper execs right after.
func ignoreRaw(n int) {
	sa := [4]uint64{1} // SIG_IGN
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(n), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0); e != 0 {
		fmt.Println("ERR rt_sigaction", n, e)
		os.Exit(1)
	}
}

// helperInspect prints what it inherited: cwd and every
// descriptor inherited through exec (probed with fcntl, which opens
// nothing itself).
func helperInspect() {
	wd, _ := os.Getwd()
	fmt.Println("cwd", wd)
	var fds []string
	for fd := 0; fd < 1024; fd++ {
		// Close-on-exec ones are this helper's own Go runtime's (cgroup
		// files, epoll): whatever was inherited through exec is not.
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && fl&unix.FD_CLOEXEC == 0 {
			fds = append(fds, strconv.Itoa(fd))
		}
	}
	fmt.Println("fds", strings.Join(fds, " "))
	os.Exit(0)
}

// --- harness ---

func initBin(t *testing.T) string {
	t.Helper()
	return testenv.Bin(t, "oxios-init")
}

// proc is a running oxios-init (possibly as PID 1 under unshare) whose
// stdout lines arrive on lines.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	pid    int // oxios-init's PID as seen from here
	lines  chan string
	stderr *testenv.Buffer
	done   chan struct{}
	status syscall.WaitStatus
}

// startInit runs oxios-init with args; pid1 wraps it in
// `unshare --pid --fork --kill-child` so that it is PID 1. env is added
// to the helper environment.
func startInit(t *testing.T, pid1 bool, env []string, args ...string) *proc {
	t.Helper()
	argv := append([]string{initBin(t)}, args...)
	if pid1 {
		testenv.RequireRoot(t)
		un := testenv.RequireTool(t, "unshare")
		argv = append([]string{un, "--pid", "--fork", "--kill-child"}, argv...)
	}
	return startArgv(t, env, argv)
}

// startInitBin is startInit, not as PID 1, of another oxios-init build.
func startInitBin(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	return startArgv(t, env, append([]string{bin}, args...))
}

func startArgv(t *testing.T, env []string, argv []string) *proc {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), "GODEBUG=asyncpreemptoff=1"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Orphans of a failed test may hold stderr open: do not wait for them.
	cmd.WaitDelay = 2 * time.Second
	p := &proc{t: t, cmd: cmd, lines: make(chan string, 4096), stderr: &testenv.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	go func() {
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			p.status = ee.Sys().(syscall.WaitStatus)
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		// A stop first, so that oxios-init takes its tree with it.
		syscall.Kill(p.pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			// Its children first: once oxios-init is gone they are
			// reparented and out of sight, and not all carry Pdeathsig.
			for _, d := range treeOf(p.pid) {
				syscall.Kill(d, syscall.SIGKILL)
			}
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("oxios-init stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

// treeOf lists every descendant of pid, from one scan of /proc. It is
// written apart from the supervisor's own scan (proctree) on purpose: the
// tests check what oxios-init's kills leave behind, and a shared bug in
// one scan would hide itself.
func treeOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The fields after comm's closing parenthesis: "state ppid ...".
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], c)
	}
	var out []int
	for q := []int{pid}; len(q) > 0; q = q[1:] {
		out = append(out, children[q[0]]...)
		q = append(q, children[q[0]]...)
	}
	return out
}

// initPID is the PID to signal: oxios-init itself, not unshare.
func (p *proc) initPID() int {
	p.t.Helper()
	if !strings.HasSuffix(p.cmd.Path, "unshare") {
		return p.pid
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.pid, p.pid))
	if err != nil {
		p.t.Fatalf("children of unshare: %v", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		p.t.Fatalf("unshare %d has children %q, want one", p.pid, f)
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// expect waits for a stdout line containing want.
func (p *proc) expect(want string, timeout time.Duration) string {
	p.t.Helper()
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("stdout closed while waiting for %q", want)
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-tm.C:
			p.t.Fatalf("no %q on stdout within %s", want, timeout)
		}
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.initPID(), sig); err != nil {
		p.t.Fatalf("kill %d %v: %v", p.initPID(), sig, err)
	}
}

// wait waits for oxios-init (or unshare around it) to exit and returns
// its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("oxios-init did not exit within %s", timeout)
	}
	return exitCode(p.status, p.cmd.ProcessState)
}

func exitCode(ws syscall.WaitStatus, ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	st := ps.Sys().(syscall.WaitStatus)
	if st.Signaled() {
		return 128 + int(st.Signal())
	}
	return st.ExitStatus()
}

// runInit runs oxios-init to completion and returns exit code and output.
func runInit(t *testing.T, timeout time.Duration, pid1 bool, env []string, args ...string) (int, string, string) {
	t.Helper()
	p := startInit(t, pid1, env, args...)
	var out strings.Builder
	tm := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				code := p.wait(timeout)
				return code, out.String(), p.stderr.String()
			}
			out.WriteString(l + "\n")
		case <-tm:
			t.Fatalf("oxios-init %q did not finish within %s; stderr:\n%s", args, timeout, p.stderr.String())
		}
	}
}

func helperEnv(mode string, extra ...string) []string {
	return append([]string{"OXIOS_SUP_HELPER=" + mode}, extra...)
}

// helperZombies forks OXIOS_SUP_ZOMBIES children that exit at once, never
// reaps them, waits (waitid with WNOWAIT, which leaves them zombies) until
// every one has exited, and exits 9: all of them are reparented to
// oxios-init in the same moment as this main child's own exit.
func helperZombies() {
	n, _ := strconv.Atoi(os.Getenv("OXIOS_SUP_ZOMBIES"))
	attr := &syscall.ProcAttr{Files: []uintptr{0, 2, 2}}
	pids := make([]int, 0, n)
	for i := 0; i < n; i++ {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, attr)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if err != unix.EINTR {
				break
			}
		}
	}
	os.Exit(9)
}
