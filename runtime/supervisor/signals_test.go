package supervisor_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

// With no grace period configured, a stop signal is forwarded and
// oxios-init waits, as tini does: no SIGKILL timer is armed (the log says
// so), and a child that handles SIGTERM and keeps running is still
// running when it finally exits on its own (0, not 137).
func TestNoGraceNoKill(t *testing.T) {
	p := startInit(t, false, helperEnv("sigrecv", "OXIOS_SUP_PREFIX=child", "OXIOS_SUP_EXIT_ON=10"), "-s", "-vv", "--", os.Args[0])
	p.expect("child ready", 10*time.Second)
	p.signal(syscall.SIGTERM)
	p.expect("child sig 15", 5*time.Second)
	testenv.WaitFor(t, "the condition", 5*time.Second, func() bool { return strings.Contains(p.stderr.String(), "received SIGTERM") })
	if log := p.stderr.String(); !strings.Contains(log, "no grace period configured, so no SIGKILL") {
		t.Errorf("stop without --grace: want the no-SIGKILL log line, got:\n%s", log)
	}
	p.signal(syscall.SIGINT) // a second stop signal arms nothing either
	p.expect("child sig 2", 5*time.Second)
	p.signal(syscall.SIGUSR1)
	p.expect("child drained", 5*time.Second)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("exit %d, want 0: the child exited on its own", code)
	}
	if strings.Contains(p.stderr.String(), "killing") {
		t.Errorf("oxios-init killed something without a grace period:\n%s", p.stderr.String())
	}
}

// Signal 34 (SIGRTMIN) cannot be caught by a Go program, so it is not
// forwarded; it must not end oxios-init either. Not as PID 1 oxios-init
// ignores it; as PID 1 the kernel drops it. Either way oxios-init still
// forwards the next signal.
func TestRTMinHarmless(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			p := startInit(t, pid1, helperEnv("sigrecv", "OXIOS_SUP_PREFIX=child", "OXIOS_SUP_EXIT_ON=10"), "-s", "--", os.Args[0])
			p.expect("child ready", 10*time.Second)
			p.signal(34)
			p.signal(syscall.SIGUSR1)
			p.expect("child drained", 5*time.Second)
			if code := p.wait(10 * time.Second); code != 0 {
				t.Errorf("exit %d after SIGRTMIN and SIGUSR1, want 0", code)
			}
		})
	}
}

// The child gets signal 34 at its default action although oxios-init
// ignores it, and ignored when it was ignored where oxios-init started.
func TestRTMinInherited(t *testing.T) {
	bin := initBin(t)
	bash := testenv.RequireTool(t, "bash")
	for _, c := range []struct {
		trap    string
		ignored bool
	}{{"", false}, {"trap '' RTMIN; ", true}} {
		out, err := exec.Command(bash, "-c", c.trap+"exec "+bin+" -s -- grep SigIgn /proc/self/status").Output()
		if err != nil {
			t.Fatalf("%q: %v", c.trap, err)
		}
		f := strings.Fields(string(out))
		if len(f) != 2 {
			t.Fatalf("child said %q", out)
		}
		ign, _ := strconv.ParseUint(f[1], 16, 64)
		if got := ign&(1<<33) != 0; got != c.ignored {
			t.Errorf("%q: signal 34 ignored in the child: %v, want %v (SigIgn %s)", c.trap, got, c.ignored, f[1])
		}
	}
}

// A SIGURG that the Go runtime sends itself to preempt a goroutine never
// reaches the child; an external one does. The control build claims
// asyncpreemptoff=1 (main.godebugDefault) without linking it into the
// runtime, so it forwards every SIGURG: the same load (oxios-init serving
// its health endpoint as fast as four clients ask) must show a runtime
// SIGURG at its child, or the load proves nothing. The Makefile's build
// then gets three times that load and forwards only the external one.
func TestRuntimeSIGURGNeverForwarded(t *testing.T) {
	initBin(t) // the module builds
	control := filepath.Join(t.TempDir(), "oxios-init-control")
	build := exec.Command("go", "build", "-trimpath", "-tags", "oxios_nohttps",
		"-ldflags", "-X main.godebugDefault=asyncpreemptoff=1", "-o", control, "./cmd/oxios-init")
	build.Dir = testenv.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	n := urgLoad(t, control, 0)
	t.Logf("control build: a runtime SIGURG reached the child after %d requests", n)
	urgLoad(t, initBin(t), 3*n)
}

// urgLoad runs bin with a child that reports every signal, and requests
// its /metrics from four clients. With requests 0 it stops at the first
// SIGURG the child reports and returns how many requests that took (the
// test fails if none comes within 30 s). Otherwise it makes that many
// requests, sends one SIGURG from outside, and fails unless the child
// saw exactly that one.
func urgLoad(t *testing.T, bin string, requests int64) int64 {
	t.Helper()
	port := testenv.FreePort(t)
	// GODEBUG is cleared for oxios-init, so that only what the build
	// linked decides; the Go child gets asyncpreemptoff=1 so that it
	// sends itself no SIGURG.
	// GOMAXPROCS=2 for both builds: on oxios-init's default single P the
	// runtime seldom needs to preempt anything, and the control build
	// might not show a SIGURG within the test's time.
	env := helperEnv("sigrecv", "OXIOS_SUP_PREFIX=child", "OXIOS_SUP_EXIT_ON=10", "GODEBUG=", "GOMAXPROCS=2")
	args := []string{"-s", "--health-listen", fmt.Sprintf("127.0.0.1:%d", port), "--", "env", "GODEBUG=asyncpreemptoff=1", os.Args[0]}
	p := startInitBin(t, bin, env, args...)
	p.expect("child ready", 10*time.Second)
	var done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hammer(fmt.Sprintf("http://127.0.0.1:%d/metrics", port), requests, &done, stop)
		}()
	}
	if requests == 0 {
		p.expect("child sig 23", 30*time.Second)
		close(stop)
		wg.Wait()
		return done.Load()
	}
	wg.Wait()
	// Counted by hand, not with expect, which would skip earlier ones. The
	// external SIGURG is awaited before the SIGUSR1 that ends the child:
	// signals pending together arrive lowest number first.
	urgs := 0
	p.signal(syscall.SIGURG)
	timeout := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case l := <-p.lines:
			if strings.Contains(l, "child sig 23") {
				urgs++
				seen = true
			}
		case <-timeout:
			t.Fatal("the external SIGURG did not reach the child within 10s")
		}
	}
	p.signal(syscall.SIGUSR1)
	for l := range p.lines {
		if strings.Contains(l, "child sig 23") {
			urgs++
		}
	}
	if urgs != 1 {
		t.Errorf("the child saw %d SIGURGs after %d requests and one external SIGURG, want exactly 1", urgs, done.Load())
	}
	return done.Load()
}

// hammer GETs url until the clients together have made limit requests
// (0: no limit) or stop is closed.
func hammer(url string, limit int64, done *atomic.Int64, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if limit > 0 && done.Add(1) > limit {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cancel()
		if limit == 0 {
			done.Add(1)
		}
	}
}
