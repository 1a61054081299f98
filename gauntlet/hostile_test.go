package gauntlet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

// The hostile-container rows (issue 11): a static attacker program, built
// here, runs inside the task as the daemon's uid (a task exec with the
// container's own process spec, or as the daemon itself) and attacks the
// host through what the container shares with it. Every row asserts that
// the victim files on the host kept their hash and mode, that no CLI run
// took more than cliLimit or grew past rssLimit, and that start, status
// and stop still work.
const (
	cliLimit = 20 * time.Second
	rssLimit = 150 << 10 // KiB
)

// TestHostileContainer runs rows 11.1-11.6 and the /run bound against one
// task; 11.5's host user and 11.7's lying daemon have their own tests.
func TestHostileContainer(t *testing.T) {
	testenvRoot(t)
	att := buildAttacker(t)
	logDir := tinyLogDir(t)
	e := newEnv(t, setup{logDir: logDir})
	v := newVictims(t)
	e.mustStartHostile(t)
	placeAttacker(t, att, e.dataDir)
	a := &attacker{e: e}

	t.Run("11.1", func(t *testing.T) { row1LogReport(t, e, a, v, logDir) })
	t.Run("11.3", func(t *testing.T) { row3StatusReads(t, e, a, v) })
	t.Run("11.2", func(t *testing.T) { row2NotifySwap(t, e, a, v) })
	t.Run("11.6", func(t *testing.T) { row6HealthSocket(t, e, a, v) })
	t.Run("11.13", func(t *testing.T) { rowRunBound(t, e, a, v) })
	t.Run("11.4", func(t *testing.T) { row4DataLock(t, e, a, v) })
}

// mustStartHostile starts without a table row (the rows are subtests).
func (e *env) mustStartHostile(t *testing.T) {
	t.Helper()
	if r := e.oxios(90*time.Second, "start"); r.code != 0 {
		t.Fatalf("start: %s", r)
	}
}

// Row 11.1: links from the shared dir to a host file, then log writes
// that fail (a full log disk). The log driver (root) writes its report
// only into the host-private run dir.
func row1LogReport(t *testing.T, e *env, a *attacker, v *victims, logDir string) {
	rw := scenario(t, "11.1", "hostile: links for the log driver's report, full log disk")
	out := a.run(t, rw, "plant", v.file)
	rw.note("planted: %s", summarize(out))
	filler := filepath.Join(logDir, "filler")
	if err := fill(filler); err != nil {
		rw.fail(t, "fill %s: %v", logDir, err)
	}
	defer os.Remove(filler)
	report := filepath.Join(e.runDir, e.id, "log-error")
	var st statusJSON
	ok := false
	for i := 0; i < 10 && !ok; i++ {
		if err := e.flipReadiness(); err != nil {
			rw.fail(t, "readiness flip with a full log disk: %v", err)
		}
		ok = eventually(time.Second, 20*time.Millisecond, func() bool {
			st, _ = e.status()
			return st.raw["log_error"] != nil
		})
	}
	if !ok {
		rw.fail(t, "status never showed the log driver's report of the full disk")
	}
	if fi, err := os.Lstat(report); err != nil || !fi.Mode().IsRegular() {
		rw.errorf(t, "the report %s is not a regular file: %v %v", report, fi, err)
	}
	v.check(t, rw)
	rw.note("report in the private dir, status: %v", st.raw["log_error"])
}

// Row 11.3: a FIFO, a link to a host file and a /dev/zero link where
// status used to read the report. status neither hangs, grows, nor
// prints the host file.
func row3StatusReads(t *testing.T, e *env, a *attacker, v *victims) {
	rw := scenario(t, "11.3", "hostile: FIFO, host-file and /dev/zero links for status")
	a.run(t, rw, "plant", v.file)
	r, rss := e.measured(t, rw, "status", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"running"`) {
		rw.errorf(t, "status does not say running: %s", r)
	}
	if strings.Contains(r.stdout+r.stderr, victimSecret) {
		rw.errorf(t, "status printed the host file: %s", r)
	}
	v.check(t, rw)
	rw.note("status %v, max RSS %d KiB", r.took.Round(time.Millisecond), rss)
}

// Row 11.6: the health socket replaced by a server that streams JSON
// forever, then by a link to a host socket.
func row6HealthSocket(t *testing.T, e *env, a *attacker, v *victims) {
	rw := scenario(t, "11.6", "hostile: health.sock replaced (endless JSON; link to a host socket)")
	stop := a.start(t, rw, "listening", "fakehealth")
	r, rss := e.measured(t, rw, "status", "--json")
	stop()
	if r.code != 0 || strings.Contains(r.stdout, "1000000") {
		rw.errorf(t, "status trusted the fake endpoint or failed: %s", r)
	}
	rw.note("endless JSON: status %v, max RSS %d KiB", r.took.Round(time.Millisecond), rss)

	hostSock := filepath.Join(v.dir, "host.sock")
	l, err := net.Listen("unix", hostSock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	a.run(t, rw, "linkhealth", hostSock)
	r, _ = e.measured(t, rw, "status", "--json")
	if r.code != 0 {
		rw.errorf(t, "status with a linked health.sock: %s", r)
	}
	if n := accepted.Load(); n > 0 {
		rw.errorf(t, "status connected %d time(s) to the host socket the link points at", n)
	}
	v.check(t, rw)
}

// Row 11.2: the notify socket swapped for a link while start adopts the
// running task (the host binds it and sets its mode each time).
func row2NotifySwap(t *testing.T, e *env, a *attacker, v *victims) {
	rw := scenario(t, "11.2", "hostile: notify.sock swapped for a link during adoption")
	done := a.background(t, "swapnotify", v.file)
	var worst time.Duration
	for i := 0; i < 3; i++ {
		r, _ := e.measured(t, rw, "start")
		if r.code != 0 {
			rw.errorf(t, "adopting start %d: %s", i, r)
		}
		worst = max(worst, r.took)
	}
	out := done()
	if !strings.Contains(out, " 0 swaps") {
		rw.errorf(t, "the container could swap the notify socket: %s", out)
	}
	v.check(t, rw)
	rw.note("3 adopting starts, slowest %v; attacker: %s", worst.Round(time.Millisecond), strings.TrimSpace(out))
}

// Row 11.13 (/run bound): the container fills its shared run dir; it
// holds at most the host's cap, and stop removes the mount.
func rowRunBound(t *testing.T, e *env, a *attacker, v *victims) {
	rw := scenario(t, "11.13", "hostile: filling the shared run dir (host /run)")
	ctr := filepath.Join(e.runDir, e.id, "ctr")
	if !isTmpfsMount(ctr) {
		rw.fail(t, "%s is not a tmpfs mount", ctr)
	}
	out := a.run(t, rw, "fill")
	var n int64
	fmt.Sscanf(strings.TrimSpace(out), "fill: %d bytes", &n)
	if n == 0 || n > 1<<20 || !strings.Contains(out, "no space left") {
		rw.errorf(t, "the container wrote %d bytes into the run dir: %s", n, out)
	}
	rw.note("wrote %d KiB before ENOSPC", n>>10)
	v.check(t, rw)
}

// Row 11.4: a FIFO, then a link to a host file, at data_dir/oxios.lock
// (the legacy daemon's lock, checked by start). stop and start stay
// quick; the /run bound's tmpfs goes with stop.
func row4DataLock(t *testing.T, e *env, a *attacker, v *victims) {
	rw := scenario(t, "11.4", "hostile: FIFO and host-file link at data_dir/oxios.lock")
	ctr := filepath.Join(e.runDir, e.id, "ctr")
	for _, mode := range []string{"lockfifo", "locklink"} {
		a.run(t, rw, mode, v.file)
		for _, cmd := range []string{"stop", "start"} {
			r, _ := e.measured(t, rw, cmd)
			if r.code != 0 {
				rw.errorf(t, "%s after %s: %s", cmd, mode, r)
			}
			if cmd == "stop" && isTmpfsMount(ctr) {
				rw.errorf(t, "stop left the tmpfs on %s", ctr)
			}
		}
	}
	v.check(t, rw)
}

// TestHostileHostUser is row 11.5: a non-root user on the host tries to
// hold the start lock (it was 0644, so a read-only fd could flock it).
func TestHostileHostUser(t *testing.T) {
	rw := scenario(t, "11.5", "hostile host user: flock on the start lock")
	testenvRoot(t)
	e := newEnv(t, setup{})
	e.mustStart(rw)
	user := "oxh" + strconv.Itoa(os.Getpid()%100000)
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user).CombinedOutput(); err != nil {
		rw.fail(t, "useradd %s: %v %s", user, err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", user).Run() })
	// Let the user reach the lock, as under the default /run/oxios (0755).
	for _, d := range []string{e.dir, e.runDir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lock := filepath.Join(e.runDir, e.id+".lock")
	if fi, err := os.Stat(lock); err != nil || fi.Mode().Perm() != 0o600 {
		rw.errorf(t, "lock %s: %v %v, want mode 0600", lock, fi, err)
	}
	hold := exec.Command("runuser", "-u", user, "--", "flock", "--shared", lock, "sleep", "60")
	var herr bytes.Buffer
	hold.Stderr = &herr
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	held := make(chan error, 1)
	go func() { held <- hold.Wait() }()
	t.Cleanup(func() { hold.Process.Kill() })
	for _, cmd := range []string{"stop", "start"} {
		r, _ := e.measured(t, rw, cmd)
		if r.code != 0 {
			rw.errorf(t, "%s while %s tries to hold the lock: %s", cmd, user, r)
		}
	}
	select {
	case err := <-held:
		rw.note("%s's flock: %v (%s)", user, err, strings.TrimSpace(herr.String()))
		if err == nil {
			rw.errorf(t, "%s could open the lock", user)
		}
	case <-time.After(5 * time.Second):
		rw.errorf(t, "%s still holds (or waits for) the lock", user)
	}
}

// TestHostileFakeReady is row 11.7: the daemon itself lies. It answers
// 503, writes oxios-init's ready file and sends READY=1 (with a guessed
// token, and without) to the host's notify socket. start must fail with
// "not ready", and the daemon must not have found the real token.
func TestHostileFakeReady(t *testing.T) {
	rw := scenario(t, "11.7", "hostile: the daemon fakes readiness (ready file, READY=1)")
	testenvRoot(t)
	att := buildAttacker(t)
	// A liveness probe the liar passes (it listens): it must keep running
	// until start gives up.
	e := newEnv(t, setup{startTimeout: "3s", extra: map[string]string{"liveness": "tcp://127.0.0.1:{port}"}})
	e.s.args = []string{"/data/attacker", "fakeready", strconv.Itoa(e.port)}
	if err := e.writeConfig(testenv.ImageArchive(t)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.dataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	os.Chown(e.dataDir, 65532, 65532) // the image's user, as oxios would
	placeAttacker(t, att, e.dataDir)
	r, rss := e.measured(t, rw, "start")
	if r.code == 0 || !strings.Contains(r.stderr, "did not become ready") || !strings.Contains(r.stderr, "within 3s") {
		rw.errorf(t, "start believed the daemon: %s", r)
	}
	logb, _ := os.ReadFile(e.logPath())
	if !strings.Contains(string(logb), `token in my environment: ""`) {
		rw.errorf(t, "the daemon saw the notify token in its environment (or never ran): %.2000s", logb)
	}
	if !strings.Contains(string(logb), "refused read /proc/1/environ") {
		rw.errorf(t, "the daemon could read oxios-init's environment: %.2000s", logb)
	}
	rw.note("start refused in %v (max RSS %d KiB)", r.took.Round(time.Millisecond), rss)
}

// attacker runs testdata/attacker in e's task.
type attacker struct {
	e  *env
	mu sync.Mutex
	cl *client.Client
}

// exec starts the attacker with the container's own process spec (user,
// capabilities, environment minus the notify token, which the daemon
// never has): exactly what the daemon could do.
func (a *attacker) exec(t *testing.T, args ...string) (client.Process, <-chan client.ExitStatus, *syncBuffer) {
	t.Helper()
	cl, ctx := a.e.client()
	ctr, err := cl.LoadContainer(ctx, a.e.id)
	if err != nil {
		t.Fatalf("load container: %v", err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatalf("container spec: %v", err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		t.Fatalf("task: %v", err)
	}
	p := *spec.Process
	p.Terminal = false
	p.Args = append([]string{"/data/attacker"}, args...)
	p.Env = nil
	for _, kv := range spec.Process.Env {
		if !strings.HasPrefix(kv, "OXIOS_INIT_NOTIFY_TOKEN=") {
			p.Env = append(p.Env, kv)
		}
	}
	out := &syncBuffer{}
	proc, err := task.Exec(ctx, randID("atk"), &p, cio.NewCreator(cio.WithStreams(nil, out, out)))
	if err != nil {
		t.Fatalf("exec attacker: %v", err)
	}
	ch, err := proc.Wait(ctx)
	if err == nil {
		err = proc.Start(ctx)
	}
	if err != nil {
		proc.Delete(ctx)
		t.Fatalf("start attacker: %v", err)
	}
	return proc, ch, out
}

// run runs the attacker to its end and returns its output.
func (a *attacker) run(t *testing.T, rw *row, args ...string) string {
	t.Helper()
	proc, ch, out := a.exec(t, args...)
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		proc.Kill(context.Background(), syscall.SIGKILL)
		<-ch
	}
	proc.IO().Wait()
	proc.Delete(context.Background())
	t.Logf("attacker %v:\n%s", args, out)
	return out.String()
}

// background runs the attacker on its own; done waits for its end.
func (a *attacker) background(t *testing.T, args ...string) (done func() string) {
	t.Helper()
	proc, ch, out := a.exec(t, args...)
	return func() string {
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			proc.Kill(context.Background(), syscall.SIGKILL)
			<-ch
		}
		proc.IO().Wait()
		proc.Delete(context.Background())
		return out.String()
	}
}

// start runs a serving attacker until it prints ready; stop kills it.
func (a *attacker) start(t *testing.T, rw *row, ready string, args ...string) (stop func()) {
	t.Helper()
	proc, ch, out := a.exec(t, args...)
	stop = func() {
		proc.Kill(context.Background(), syscall.SIGKILL)
		<-ch
		proc.IO().Wait()
		proc.Delete(context.Background())
	}
	if !eventually(10*time.Second, 10*time.Millisecond, func() bool { return strings.Contains(out.String(), ready) }) {
		stop()
		rw.fail(t, "attacker %v never said %q: %s", args, ready, out)
	}
	return stop
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// measured runs the CLI, failing the row when it takes more than
// cliLimit or its peak RSS passes rssLimit; it returns the peak in KiB.
func (e *env) measured(t *testing.T, rw *row, args ...string) (result, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliLimit)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String(), took: time.Since(t0), code: cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		rw.fail(t, "oxios %s hung: killed after %v", strings.Join(args, " "), cliLimit)
	}
	if err != nil && r.code < 0 {
		rw.fail(t, "oxios %s: %v", strings.Join(args, " "), err)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	if rss > rssLimit {
		rw.errorf(t, "oxios %s peaked at %d KiB RSS (limit %d)", strings.Join(args, " "), rss, rssLimit)
	}
	return r, rss
}

const victimSecret = "root-only host secret"

// victims are host files the attacker aims at: their hash and mode must
// not change.
type victims struct {
	dir, file string
	want      map[string]string
}

func newVictims(t *testing.T) *victims {
	t.Helper()
	dir, err := os.MkdirTemp("", "gxv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	v := &victims{dir: dir, file: filepath.Join(dir, "victim"), want: map[string]string{}}
	if err := os.WriteFile(v.file, []byte(victimSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{v.file, dir} {
		v.want[p] = fingerprint(p)
	}
	return v
}

func fingerprint(p string) string {
	fi, err := os.Lstat(p)
	if err != nil {
		return err.Error()
	}
	st := fi.Sys().(*syscall.Stat_t)
	s := fmt.Sprintf("mode %v uid %d gid %d", fi.Mode(), st.Uid, st.Gid)
	if fi.Mode().IsRegular() {
		b, _ := os.ReadFile(p)
		s += fmt.Sprintf(" sha256 %x", sha256.Sum256(b))
	}
	return s
}

func (v *victims) check(t *testing.T, rw *row) {
	t.Helper()
	for p, want := range v.want {
		if got := fingerprint(p); got != want {
			rw.errorf(t, "host file %s changed: %s -> %s", p, want, got)
		}
	}
}

// buildAttacker builds testdata/attacker as a static binary, once.
func buildAttacker(t *testing.T) string {
	t.Helper()
	attackerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gxatk")
		if err != nil {
			attackerErr = err
			return
		}
		attackerBin = filepath.Join(dir, "attacker")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		cmd := exec.Command(gobin, "build", "-o", attackerBin, "./testdata/attacker")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			attackerErr = fmt.Errorf("go build ./testdata/attacker: %v\n%s", err, out)
		}
	})
	if attackerErr != nil {
		t.Fatal(attackerErr)
	}
	return attackerBin
}

var (
	attackerOnce sync.Once
	attackerBin  string
	attackerErr  error
)

// placeAttacker copies the attacker into the data dir (/data inside).
func placeAttacker(t *testing.T, bin, dataDir string) {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "attacker"), b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// tinyLogDir is a 64 KiB tmpfs for the task's log (row 11.1 fills it).
func tinyLogDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gxlog")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	// Registered before newEnv's: runs after its `oxios stop`.
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH); os.Remove(dir) })
	return dir
}

// isTmpfsMount: path is a tmpfs mount point in this mount namespace.
func isTmpfsMount(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == path && strings.Contains(line, " - tmpfs ") {
			return true
		}
	}
	return false
}

// summarize keeps an attacker's output short for the table.
func summarize(out string) string {
	var ok, refused int
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "ok "):
			ok++
		case strings.HasPrefix(l, "refused "):
			refused++
		}
	}
	return fmt.Sprintf("%d done, %d refused", ok, refused)
}
