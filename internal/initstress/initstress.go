// Package initstress starts oxios-init many times, eight at a time, and
// sends it signals at random moments of its start-up. It reports every
// start that hung (no ready child and no exit within the limit), lost a
// signal sent once the child was ready, or left a process behind. Both the
// short test of cmd/oxios-init and the gauntlet's long run use it.
package initstress

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

// Kind is what oxios-init runs.
type Kind int

const (
	// True is /bin/true: oxios-init's whole life is its start-up.
	True Kind = iota
	// Handler is the child command of this package (BuildChild): it
	// reports every signal it receives.
	Handler
)

func (k Kind) String() string { return [...]string{"/bin/true", "signal handler"}[k] }

// Config says what to start and how often.
type Config struct {
	Init     string        // oxios-init's path
	Child    string        // the handler child's path (BuildChild)
	Starts   int           // starts per (kind, mode) pair
	Parallel int           // starts at once (8)
	Modes    []Mode        // how oxios-init is started (Plain)
	Limit    time.Duration // the longest a start may take (2 s)
	Seed     int64
}

// Mode is one way of starting oxios-init.
type Mode struct {
	Label string
	Path  string   // what to run; "" is Config.Init (a link named dumb-init picks that personality)
	Args  []string // options before "--"
	PID1  bool     // PID 1 of a new PID namespace (needs root)
	// Terminal starts oxios-init as the leader of a new session whose
	// controlling terminal (and stdin) is a new pseudo-terminal, as a
	// container runtime does for a TTY.
	Terminal bool
}

// Plain are the modes the stress test names: with -s, and as PID 1.
var Plain = []Mode{
	{Label: "-s", Args: []string{"-s"}},
	{Label: "PID 1", PID1: true},
}

// Result is one (kind, mode) pair's outcome.
type Result struct {
	Kind     Kind
	Mode     Mode
	Starts   int
	Failures []string // one line each: start number, seed and what went wrong
	Slowest  time.Duration
	Exits    map[int]int // oxios-init's exit code -> starts
}

func (r Result) String() string {
	mode := r.Mode.Label
	codes := make([]int, 0, len(r.Exits))
	for c := range r.Exits {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var ex []string
	for _, c := range codes {
		ex = append(ex, fmt.Sprintf("%d:%d", c, r.Exits[c]))
	}
	return fmt.Sprintf("%s, %s: %d starts, %d failed, slowest %s, exit codes %s",
		r.Kind, mode, r.Starts, len(r.Failures), r.Slowest.Round(time.Millisecond), strings.Join(ex, " "))
}

// BuildChild builds the handler child into a temporary directory of t.
func BuildChild(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "initstress-child")
	// The go command of this test's toolchain; a -trimpath build knows
	// no GOROOT, and PATH has one then.
	goCmd := "go"
	if root := runtime.GOROOT(); root != "" {
		goCmd = filepath.Join(root, "bin", "go")
	}
	cmd := exec.Command(goCmd, "build", "-o", out, "./internal/initstress/child")
	cmd.Dir = testenv.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build internal/initstress/child: %v\n%s", err, b)
	}
	return out
}

// Run runs cfg.Starts starts of each kind in each mode, then looks for
// any process a start left behind.
func Run(cfg Config) []Result {
	if cfg.Parallel == 0 {
		cfg.Parallel = 8
	}
	if cfg.Limit == 0 {
		cfg.Limit = 2 * time.Second
	}
	marker := fmt.Sprintf("OXIOS_INITSTRESS=%d-%d", os.Getpid(), time.Now().UnixNano())
	if cfg.Modes == nil {
		cfg.Modes = Plain
	}
	var results []Result
	for _, m := range cfg.Modes {
		for _, k := range []Kind{True, Handler} {
			results = append(results, runPair(cfg, k, m, marker))
		}
	}
	if left := leftovers(marker); len(left) > 0 {
		r := &results[len(results)-1]
		r.Failures = append(r.Failures, fmt.Sprintf("after every start: processes left behind: %v", left))
	}
	return results
}

func runPair(cfg Config, k Kind, m Mode, marker string) Result {
	res := Result{Kind: k, Mode: m, Starts: cfg.Starts, Exits: map[int]int{}}
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < cfg.Parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s := &start{cfg: cfg, kind: k, mode: m, pid1: m.PID1, marker: marker, n: i, rnd: rand.New(rand.NewSource(cfg.Seed + int64(i)))}
				o := s.run()
				mu.Lock()
				res.Exits[o.code]++
				if o.took > res.Slowest {
					res.Slowest = o.took
				}
				if o.err != "" {
					res.Failures = append(res.Failures, fmt.Sprintf("start %d (seed %d): %s", i, cfg.Seed+int64(i), o.err))
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < cfg.Starts; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return res
}

// startupSignals may arrive at any moment of start-up. Sent to PID 1
// before it has a handler (in the first moments of the Go runtime), the
// kernel discards them: a start-up SIGTERM may be lost, and the start then
// ends by the ready signals and a SIGTERM like any other. SIGTSTP, SIGTTIN
// and SIGTTOU are not among them: before the Go runtime of a non-PID-1
// oxios-init has asked for them, their default action stops it (see the
// README's "Coming from tini / dumb-init").
var startupSignals = []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGWINCH, syscall.SIGALRM, syscall.SIGCONT, syscall.SIGTERM}

// readySignals are sent once each after the child said it is ready, and
// must all reach it. They are not startupSignals, which may still be on
// their way and merge with them.
var readySignals = []syscall.Signal{syscall.SIGUSR2, 35, 40, 50, syscall.SIGPWR}

type start struct {
	cfg    Config
	kind   Kind
	mode   Mode
	pid1   bool
	marker string
	n      int
	rnd    *rand.Rand
}

type outcome struct {
	code int
	took time.Duration
	err  string
}

func (s *start) command() *exec.Cmd {
	path := s.mode.Path
	if path == "" {
		path = s.cfg.Init
	}
	child := "/bin/true"
	if s.kind == Handler {
		child = s.cfg.Child
	}
	args := append(append(append([]string(nil), s.mode.Args...), "--"), child)
	cmd := exec.Command(path, args...)
	// Verbosity 2 logs every child's exit and how it ended, for the report
	// of a start that fails.
	cmd.Env = append(os.Environ(), s.marker+"-"+strconv.Itoa(s.n), "OXIOS_INIT_VERBOSITY=2")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if s.pid1 {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
	}
	return cmd
}

// plan picks up to three start-up signals and when to send them: within
// the first 4 ms, oxios-init's and the child's start-up on a loaded
// machine.
func (s *start) plan() (sigs []syscall.Signal, at []time.Duration) {
	for i := s.rnd.Intn(4); i > 0; i-- {
		sigs = append(sigs, startupSignals[s.rnd.Intn(len(startupSignals))])
		at = append(at, time.Duration(s.rnd.Int63n(int64(4*time.Millisecond))))
	}
	sort.Slice(at, func(i, j int) bool { return at[i] < at[j] })
	return sigs, at
}

func (s *start) run() (o outcome) {
	cmd := s.command()
	out, w, err := os.Pipe()
	if err != nil {
		return outcome{code: -1, err: err.Error()}
	}
	errBuf := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = w, errBuf
	if s.mode.Terminal {
		master, slave, err := openPTY()
		if err != nil {
			w.Close()
			out.Close()
			return outcome{code: -1, err: err.Error()}
		}
		defer master.Close()
		defer slave.Close()
		cmd.Stdin = slave
		cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
	}
	cmd.WaitDelay = s.cfg.Limit
	sigs, at := s.plan()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		w.Close()
		out.Close()
		return outcome{code: -1, err: err.Error()}
	}
	w.Close()
	pid := cmd.Process.Pid
	lines := readLines(out)
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i, sig := range sigs {
			time.Sleep(time.Until(t0.Add(at[i]))) // the stimulus, not a wait for an event
			syscall.Kill(pid, sig)
		}
	}()
	defer func() {
		o.took = time.Since(t0)
		if o.err != "" {
			o.err += "; stderr: " + strings.TrimSpace(errBuf.String())
		}
	}()
	fail := func(what string) outcome {
		diag := diagnose(pid)
		killTree(pid)
		<-exited
		code := exitCode(cmd)
		return outcome{code: code, err: fmt.Sprintf("%s (signals %v at %v); exit code %d; child said %q; %s", what, sigs, at, code, lines.said(), diag)}
	}
	limit := time.NewTimer(s.cfg.Limit)
	defer limit.Stop()
	child := 0
	if s.kind == Handler {
		select {
		case l := <-lines.ready:
			child = l
		case <-exited:
			child = lines.readyAfterExit(limit.C)
		case <-limit.C:
			return fail(fmt.Sprintf("hang: no ready child and no exit within %s", s.cfg.Limit))
		}
	}
	<-sent
	if child != 0 {
		// A start-up SIGTERM may have been lost (see startupSignals) or
		// be on its way; the ready signals decide either way.
		exitedEarly, err := s.signalReady(pid, lines, exited)
		switch {
		case exitedEarly && s.diedOfStartup(exitCode(cmd), sigs):
		case err != "":
			return fail(err)
		default:
			limit.Reset(s.cfg.Limit)
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	select {
	case <-exited:
	case <-limit.C:
		return fail(fmt.Sprintf("hang: oxios-init did not exit within %s", s.cfg.Limit))
	}
	o.code = exitCode(cmd)
	if msg := s.judge(o.code, sigs, child); msg != "" {
		o.err = msg
	}
	// As PID 1, the child's PID is the namespace's, and the kernel kills
	// whatever is left when PID 1 exits; the final scan checks both modes.
	if child != 0 && !s.pid1 && s.alive(child) {
		o.err += fmt.Sprintf(" child %d left behind", child)
		syscall.Kill(child, syscall.SIGKILL)
	}
	return o
}

// signalReady sends each readySignal once and waits until the child has
// reported them all, or oxios-init exited (exited is then true).
func (s *start) signalReady(pid int, lines *lineReader, exited chan struct{}) (bool, string) {
	want := map[int]bool{}
	for _, sig := range readySignals {
		want[int(sig)] = true
		syscall.Kill(pid, sig)
	}
	limit := time.After(s.cfg.Limit)
	for len(want) > 0 {
		select {
		case n := <-lines.sig:
			delete(want, n)
		case <-exited:
			return true, fmt.Sprintf("oxios-init exited before the child reported signals %v", keys(want))
		case <-limit:
			return false, fmt.Sprintf("lost: signals %v sent after the child was ready never reached it within %s", keys(want), s.cfg.Limit)
		}
	}
	return false, ""
}

// diedOfStartup says whether an exit that came before the child reported
// the ready signals is the doing of a start-up signal: a SIGTERM that
// drained the child, or a signal that reached oxios-init before its
// handlers, whose thread in the Go runtime may end the process only after
// the child is ready (on a loaded machine that thread waits its turn).
func (s *start) diedOfStartup(code int, sigs []syscall.Signal) bool {
	if code == 0 {
		return contains(sigs, syscall.SIGTERM)
	}
	return len(sigs) > 0 && s.judge(code, sigs, 0) == ""
}

// judge checks oxios-init's exit code against what the start went through.
func (s *start) judge(code int, sigs []syscall.Signal, child int) string {
	ok := map[int]bool{}
	if s.kind == True || child != 0 {
		ok[0] = true // true's status, or the child drained on SIGTERM
	}
	for _, sig := range sigs {
		// The child, or oxios-init before its handlers were installed,
		// died of a signal sent during start-up.
		ok[128+int(sig)] = true
		// A Go runtime that is PID 1 cannot die of its own signal and
		// exits 2 instead (runtime.dieFromSignal).
		ok[2] = ok[2] || s.pid1
	}
	if !ok[code] {
		return fmt.Sprintf("exit code %d after signals %v (child ready: %v)", code, sigs, child != 0)
	}
	return ""
}

// alive reports whether pid is still this start's child (the marker in
// its environment tells it from a process that reuses the PID).
func (s *start) alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	return err == nil && strings.Contains(string(b), s.marker+"-"+strconv.Itoa(s.n)+"\x00")
}

func exitCode(cmd *exec.Cmd) int {
	if cmd.ProcessState == nil {
		return -1
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func contains(sigs []syscall.Signal, s syscall.Signal) bool {
	for _, x := range sigs {
		if x == s {
			return true
		}
	}
	return false
}

func keys(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// lineReader splits the child's stdout into its ready line (the child's
// PID) and the signals it reports.
type lineReader struct {
	ready chan int
	sig   chan int
	eof   chan struct{} // closed when every writer has closed stdout

	mu   sync.Mutex
	text []string // the first lines, for a failure's report
}

// readyAfterExit is the child's PID if it said it was ready before
// oxios-init exited: its line may still be in the pipe.
func (lr *lineReader) readyAfterExit(limit <-chan time.Time) int {
	select {
	case <-lr.eof:
	case <-limit:
	}
	select {
	case pid := <-lr.ready:
		return pid
	default:
		return 0
	}
}

func (lr *lineReader) said() []string {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return append([]string(nil), lr.text...)
}

func readLines(r *os.File) *lineReader {
	lr := &lineReader{ready: make(chan int, 1), sig: make(chan int, 128), eof: make(chan struct{})}
	go func() {
		defer close(lr.eof)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lr.mu.Lock()
			if len(lr.text) < 16 {
				lr.text = append(lr.text, sc.Text())
			}
			lr.mu.Unlock()
			f := strings.Fields(sc.Text())
			if len(f) < 3 || f[0] != "child" {
				continue
			}
			n, _ := strconv.Atoi(f[2])
			switch f[1] {
			case "ready":
				lr.ready <- n
			case "sig":
				select {
				case lr.sig <- n:
				default:
				}
			}
		}
	}()
	return lr
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// DumbInitOnTerminal is oxios-init invoked as dumb-init (a link in t's
// temporary directory), PID 1 and leader of a session on a new
// pseudo-terminal: it gives the terminal up for the child's new session
// and must pass on none of the kernel's SIGHUP and SIGCONT of that
// hand-over.
func DumbInitOnTerminal(t testing.TB, init string) Mode {
	t.Helper()
	link := filepath.Join(t.TempDir(), "dumb-init")
	if err := os.Symlink(init, link); err != nil {
		t.Fatal(err)
	}
	return Mode{Label: "dumb-init, PID 1, terminal", Path: link, PID1: true, Terminal: true}
}
