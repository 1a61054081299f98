package health

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a7garden/oxios/runtime/contract"
)

// scripted is a Prober whose results a test decides: fn gets the call
// number (from 0) and the time since the first call.
type scripted struct {
	mu    sync.Mutex
	calls []time.Time
	fn    func(n int, since time.Duration) Result
}

func (s *scripted) Probe(ctx context.Context, deadline time.Time) Result {
	s.mu.Lock()
	n := len(s.calls)
	now := time.Now()
	s.calls = append(s.calls, now)
	first := s.calls[0]
	s.mu.Unlock()
	return s.fn(n, now.Sub(first))
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func (s *scripted) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.calls...)
}

func seq(rs ...Status) func(int, time.Duration) Result {
	return func(n int, _ time.Duration) Result {
		if n < len(rs) {
			return Result{rs[n], "scripted"}
		}
		return Result{rs[len(rs)-1], "scripted"}
	}
}

func always(s Status) func(int, time.Duration) Result { return seq(s) }

type harness struct {
	m        *Monitor
	restarts chan string
	probers  [numKinds]*scripted
}

func pc(period time.Duration, fail, succ int) ProbeConfig {
	return ProbeConfig{Spec: "tcp://:1", Period: period, Timeout: period, SuccessThreshold: succ, FailureThreshold: fail}
}

// newHarness builds a Monitor whose configured probes run the scripted
// probers instead of the spec's.
func newHarness(t *testing.T, cfg Config, fns [numKinds]func(int, time.Duration) Result) *harness {
	t.Helper()
	h := &harness{restarts: make(chan string, 16)}
	m, err := NewMonitor(cfg, Hooks{Restart: func(r string) { h.restarts <- r }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k := range m.runners {
		if m.runners[k] != nil {
			h.probers[k] = &scripted{fn: fns[k]}
			m.runners[k].prober = h.probers[k]
		}
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	h.m = m
	return h
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestLivenessThreshold(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Liveness = pc(20*time.Millisecond, 3, 1)
	// Two failures, a success (resets the count), then three failures.
	h := newHarness(t, cfg, [numKinds]func(int, time.Duration) Result{
		kindLiveness: seq(Failure, Failure, Success, Failure, Unknown, Failure, Unknown, Failure, Success),
	})
	start := time.Now()
	h.m.ChildStarted(os.Getpid())
	select {
	case reason := <-h.restarts:
		if !strings.Contains(reason, "liveness") {
			t.Errorf("reason %q", reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no restart after 3 consecutive failures")
	}
	// Call 8 (index 7) is the third counted failure; Unknowns are not counted.
	if n := h.probers[kindLiveness].count(); n != 8 {
		t.Errorf("restart after %d probes, want 8", n)
	}
	if el := time.Since(start); el < 7*20*time.Millisecond {
		t.Errorf("restart after %v: liveness must not accelerate", el)
	}
	if h.m.state().live {
		t.Error("still live after a liveness failure")
	}
	// The runner stops: no more probes until the next child. Its goroutine
	// returning is the event; after it, the count cannot move.
	n := h.probers[kindLiveness].count()
	runnersDone := make(chan struct{})
	go func() { h.m.wg.Wait(); close(runnersDone) }()
	select {
	case <-runnersDone:
	case <-time.After(5 * time.Second):
		t.Fatal("liveness runner still running after asking for a restart")
	}
	if h.probers[kindLiveness].count() != n {
		t.Error("liveness kept probing after asking for a restart")
	}
}

func TestUnknownNeverCounted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Liveness = pc(5*time.Millisecond, 1, 1)
	h := newHarness(t, cfg, [numKinds]func(int, time.Duration) Result{kindLiveness: always(Unknown)})
	h.m.ChildStarted(os.Getpid())
	waitFor(t, "20 probes", 5*time.Second, func() bool { return h.probers[kindLiveness].count() >= 20 })
	select {
	case r := <-h.restarts:
		t.Fatalf("restart on Unknown results: %s", r)
	default:
	}
}

func TestReadinessThresholdsAndFlips(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Readiness = pc(15*time.Millisecond, 2, 2)
	var mu sync.Mutex
	status := Success
	set := func(s Status) { mu.Lock(); status = s; mu.Unlock() }
	h := newHarness(t, cfg, [numKinds]func(int, time.Duration) Result{
		kindReadiness: func(n int, _ time.Duration) Result {
			mu.Lock()
			defer mu.Unlock()
			if n == 0 {
				return Result{Success, "first"} // one success is not enough
			}
			return Result{status, "scripted"}
		},
	})
	if h.m.Ready() {
		t.Fatal("ready before any child")
	}
	h.m.ChildStarted(os.Getpid())
	waitFor(t, "ready", 2*time.Second, h.m.Ready)
	if n := h.probers[kindReadiness].count(); n < 2 {
		t.Fatalf("ready after %d probes, success threshold 2", n)
	}
	set(Failure)
	waitFor(t, "not ready", 2*time.Second, func() bool { return !h.m.Ready() })
	set(Success)
	waitFor(t, "ready again", 2*time.Second, h.m.Ready)
	select {
	case r := <-h.restarts:
		t.Fatalf("readiness failure restarted the daemon: %s", r)
	default:
	}
	h.m.ChildExited(0)
	if h.m.Ready() {
		t.Fatal("ready after the child exited")
	}
}

// Until startup succeeds only it runs; then readiness and liveness start.
func TestStartupGatesOthers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Startup = pc(100*time.Millisecond, 10, 1) // budget 1 s
	cfg.Readiness = pc(10*time.Millisecond, 3, 1)
	cfg.Liveness = pc(10*time.Millisecond, 3, 1)
	var h *harness
	var mu sync.Mutex
	var gateBroken []string
	h = newHarness(t, cfg, [numKinds]func(int, time.Duration) Result{
		kindStartup: func(_ int, since time.Duration) Result {
			// Checked at every startup probe: nothing else has run yet.
			if n := h.probers[kindReadiness].count() + h.probers[kindLiveness].count(); n != 0 {
				mu.Lock()
				gateBroken = append(gateBroken, fmt.Sprintf("%d readiness/liveness probes before startup succeeded", n))
				mu.Unlock()
			}
			if h.m.state().started || h.m.Ready() {
				mu.Lock()
				gateBroken = append(gateBroken, "started/ready before the startup probe succeeded")
				mu.Unlock()
			}
			if since >= 200*time.Millisecond {
				return Result{Success, "up"}
			}
			return Result{Failure, "not yet"}
		},
		kindReadiness: always(Success),
		kindLiveness:  always(Success),
	})
	h.m.ChildStarted(os.Getpid())
	waitFor(t, "ready", 5*time.Second, h.m.Ready)
	waitFor(t, "liveness running", 5*time.Second, func() bool { return h.probers[kindLiveness].count() > 0 })
	mu.Lock()
	for _, g := range gateBroken {
		t.Error(g)
	}
	mu.Unlock()
	st := h.probers[kindStartup].times()
	first := h.probers[kindReadiness].times()[0]
	if first.Before(st[len(st)-1]) {
		t.Fatal("readiness ran before the last startup probe")
	}
	// Accelerated: more startup probes than the period grid would allow.
	if len(st) < 5 {
		t.Errorf("only %d startup probes in 200ms: the retry does not accelerate", len(st))
	}
	select {
	case r := <-h.restarts:
		t.Fatalf("slow starter restarted within its budget: %s", r)
	default:
	}
}

// A startup probe that never succeeds restarts the daemon when its budget
// (failureThreshold x period) is spent, not after failureThreshold tries.
func TestStartupBudget(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Startup = pc(50*time.Millisecond, 3, 1) // budget 150 ms
	h := newHarness(t, cfg, [numKinds]func(int, time.Duration) Result{kindStartup: always(Failure)})
	start := time.Now()
	h.m.ChildStarted(os.Getpid())
	select {
	case r := <-h.restarts:
		el := time.Since(start)
		if el < 150*time.Millisecond || el > time.Second {
			t.Errorf("startup failure after %v, budget 150ms", el)
		}
		if !strings.Contains(r, "startup") {
			t.Errorf("reason %q", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no restart when the startup budget ran out")
	}
	if n := h.probers[kindStartup].count(); n <= 3 {
		t.Errorf("%d startup probes: the accelerated retry should run more than failureThreshold", n)
	}
}

// A probe slower than its period skips the ticks it overran; it does not
// run them back to back afterwards.
func TestDroppedTicks(t *testing.T) {
	const period = 50 * time.Millisecond
	cfg := DefaultConfig()
	cfg.Liveness = pc(period, 100, 1)
	h := newHarness(t, cfg, [numKinds]func(int, time.Duration) Result{
		kindLiveness: func(n int, _ time.Duration) Result {
			if n == 2 {
				time.Sleep(5*period + period/2) // overruns 5 ticks
			}
			return Result{Success, "ok"}
		},
	})
	h.m.ChildStarted(os.Getpid())
	waitFor(t, "6 probes", 10*time.Second, func() bool { return h.probers[kindLiveness].count() >= 6 })
	ts := h.probers[kindLiveness].times()
	// No pile-up: at most one probe per period of the grid (anchored at
	// the child's start); a late wake-up may land a probe late in its
	// slot, but the missed ticks are never run back to back.
	h.m.mu.Lock()
	anchor := h.m.startedAt
	h.m.mu.Unlock()
	slot := func(at time.Time) int64 { return int64(at.Sub(anchor) / period) }
	for i := 1; i < len(ts); i++ {
		if slot(ts[i]) <= slot(ts[i-1]) {
			t.Errorf("probes %d and %d in the same period (%v apart): ticks piled up", i-1, i, ts[i].Sub(ts[i-1]))
		}
	}
	// At least the 5 ticks the slow probe overran were dropped (more if
	// the machine stalled the runner).
	if sk := h.m.runners[kindLiveness].skipped.Load(); sk < 5 {
		t.Errorf("%d ticks skipped, want >= 5", sk)
	}
	if sn := h.m.StatusNow(); sn.Probes["liveness"].Skipped == 0 {
		t.Error("/status does not report skipped ticks")
	}
}

// Restart and readiness are per child: a new child starts from scratch,
// and no goroutine outlives the monitor.
func TestChildLifecycleNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := DefaultConfig()
	cfg.Startup = pc(5*time.Millisecond, 3, 1)
	cfg.Readiness = pc(5*time.Millisecond, 3, 1)
	cfg.Liveness = pc(5*time.Millisecond, 3, 1)
	h := newHarness(t, cfg, [numKinds]func(int, time.Duration) Result{
		kindStartup: always(Success), kindReadiness: always(Success), kindLiveness: always(Success),
	})
	for i := 0; i < 5; i++ {
		h.m.ChildStarted(os.Getpid())
		waitFor(t, "ready", 2*time.Second, h.m.Ready)
		h.m.ChildExited(0)
		if h.m.Ready() {
			t.Fatal("ready after exit")
		}
	}
	h.m.Close()
	waitFor(t, "goroutines to end", 2*time.Second, func() bool { return runtime.NumGoroutine() <= before })
}

func TestEndpointReadyFileAndQuery(t *testing.T) {
	dir := t.TempDir()
	readyFile := filepath.Join(dir, "ready")
	// A stale ready file from a killed oxios-init must not claim readiness.
	if err := os.WriteFile(readyFile, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, listen := range []string{"127.0.0.1:0", "unix:" + filepath.Join(dir, "health.sock")} {
		t.Run(strings.SplitN(listen, ":", 2)[0], func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.HealthListen = listen
			cfg.ReadyFile = readyFile
			cfg.Readiness = pc(10*time.Millisecond, 1, 1)
			cfg.Liveness = pc(10*time.Millisecond, 3, 1)
			var mu sync.Mutex
			status := Failure
			h := newHarness(t, cfg, [numKinds]func(int, time.Duration) Result{
				kindReadiness: func(int, time.Duration) Result { mu.Lock(); defer mu.Unlock(); return Result{status, "scripted"} },
				kindLiveness:  always(Success),
			})
			addr := listen
			if !strings.HasPrefix(listen, "unix:") {
				addr = h.m.Addr().String()
			}
			exists := func() bool { _, err := os.Stat(readyFile); return err == nil }
			if err := Query(addr, "readiness", time.Second); err == nil || exists() {
				t.Fatal("ready (or a ready file) before any child")
			}
			h.m.ChildStarted(os.Getpid())
			if err := Query(addr, "liveness", time.Second); err != nil {
				t.Fatalf("liveness: %v", err)
			}
			if err := Query(addr, "startup", time.Second); err != nil {
				t.Fatalf("startup with no startup probe: %v", err)
			}
			// After a few failed readiness probes (the event), not before.
			waitFor(t, "3 readiness probes", 5*time.Second, func() bool { return h.probers[kindReadiness].count() >= 3 })
			if err := Query(addr, "readiness", time.Second); err == nil || exists() {
				t.Fatal("ready while the readiness probe fails")
			}
			mu.Lock()
			status = Success
			mu.Unlock()
			waitFor(t, "ready", 2*time.Second, func() bool { return Query(addr, "readiness", time.Second) == nil })
			// /readyz probes when asked (ondemand.go): the file follows the runner.
			waitFor(t, "the ready file", 2*time.Second, exists)
			b, _ := os.ReadFile(readyFile)
			if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
				t.Errorf("ready file holds %q", b)
			}
			// /status and /metrics
			c := httpClientFor(addr)
			resp, err := c.Get("http://health/status")
			if err != nil {
				t.Fatal(err)
			}
			var st contract.Report
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if !st.Ready || st.Child.PID != os.Getpid() || st.Probes["readiness"].Result != "success" || st.Probes["readiness"].Time.IsZero() {
				t.Errorf("/status: %+v", st)
			}
			resp, err = c.Get("http://health/metrics")
			if err != nil {
				t.Fatal(err)
			}
			var mb strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := resp.Body.Read(buf)
				mb.Write(buf[:n])
				if err != nil {
					break
				}
			}
			resp.Body.Close()
			for _, want := range []string{"oxios_init_ready 1\n", "oxios_init_child_up 1\n", "oxios_init_restarts_total 0\n",
				`oxios_init_probe_success{probe="readiness"} 1`, `oxios_init_probe_results_total{probe="readiness",result="success"} `,
				"# TYPE oxios_init_restarts_total counter\n"} {
				if !strings.Contains(mb.String(), want) {
					t.Errorf("/metrics lacks %q:\n%s", want, mb.String())
				}
			}
			h.m.ChildExited(0)
			if exists() {
				t.Fatal("ready file left after the child exited")
			}
			if err := Query(addr, "readiness", time.Second); err == nil {
				t.Fatal("ready after exit")
			}
			h.m.Close()
		})
	}
	if err := Query("127.0.0.1:1", "bogus", time.Second); err == nil {
		t.Error("bogus kind accepted")
	}
}

func httpClientFor(addr string) *http.Client {
	network, a := "tcp", addr
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, a = "unix", p
	}
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, a)
	}}}
}

func TestSdNotifyReady(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	cfg := DefaultConfig()
	// The host CLI reads the ready file once READY=1 arrives: it must
	// already be there.
	cfg.ReadyFile = filepath.Join(t.TempDir(), "ready")
	h := newHarness(t, cfg, [numKinds]func(int, time.Duration) Result{})
	// The receiver waits before the child starts and looks for the file
	// the moment the datagram arrives, while ChildStarted may still run.
	type got struct {
		msg    string
		err    error
		noFile error
	}
	recv := make(chan got, 1)
	go func() {
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		_, statErr := os.Stat(cfg.ReadyFile)
		recv <- got{string(buf[:n]), err, statErr}
	}()
	h.m.ChildStarted(os.Getpid()) // no probes: ready at once
	g := <-recv
	if g.err != nil {
		t.Fatalf("no sd_notify datagram: %v", g.err)
	}
	if g.msg != "READY=1" {
		t.Fatalf("sd_notify sent %q", g.msg)
	}
	if g.noFile != nil {
		t.Errorf("READY=1 sent before the ready file was written: %v", g.noFile)
	}
}

func TestUnknownRetriedWithinTick(t *testing.T) {
	const period = 2 * time.Second
	cfg := DefaultConfig()
	cfg.Liveness = pc(period, 1, 1)
	h := newHarness(t, cfg, [numKinds]func(int, time.Duration) Result{kindLiveness: always(Unknown)})
	h.m.ChildStarted(os.Getpid())
	waitFor(t, "4 probes", 10*time.Second, func() bool { return h.probers[kindLiveness].count() >= 4 })
	ts := h.probers[kindLiveness].times()
	for i, want := range []time.Duration{unknownRetry, unknownRetry} {
		if gap := ts[i+1].Sub(ts[i]); gap < want-10*time.Millisecond || gap >= period/2 {
			t.Errorf("retry %d after %v, want ~%v", i+1, gap, want)
		}
	}
	if gap := ts[3].Sub(ts[0]); gap < period-20*time.Millisecond || gap >= 2*period {
		t.Errorf("next tick %v after the first probe, want ~%v (the grid is kept)", gap, period)
	}
	if sn := h.m.runners[kindLiveness].snapshot(); sn.Failures != 0 || sn.Successes != 0 {
		t.Errorf("unknown results counted: %+v", sn)
	}
}

// The pre-success schedule of tcp:// and http://: 1 ms, then held at 2 ms
// while the probe is younger than 50 ms, then doubling up to the cap; the
// other probers double from the start.
func TestNextRetry(t *testing.T) {
	ms := time.Millisecond
	var got []time.Duration
	iv, age := firstRetry, time.Duration(0)
	for i := 0; i < 40; i++ {
		got = append(got, iv)
		age += iv
		iv = nextRetry(iv, age < earlyWindow, 100*ms)
	}
	want := []time.Duration{1 * ms}
	for a := 1 * ms; a < earlyWindow; a += 2 * ms {
		want = append(want, 2*ms)
	}
	want = append(want, 4*ms, 8*ms, 16*ms, 32*ms, 64*ms, 100*ms, 100*ms)
	for i, w := range want {
		if i >= len(got) || got[i] != w {
			t.Fatalf("schedule %v, want it to start %v", got, want)
		}
	}
	if nextRetry(2*ms, false, 100*ms) != 4*ms {
		t.Error("an old probe (or exec:, listen://) does not double")
	}
	hold := func(p Prober) time.Duration {
		q, ok := p.(quickRetrier)
		if !ok {
			return 0
		}
		h, _ := q.quickRetry()
		return h
	}
	if hold(newTCPProber("127.0.0.1", 1)) != earlyWindow {
		t.Error("tcp:// does not hold at 2 ms")
	}
	if hold(newHTTPProber("http://127.0.0.1:1/")) != earlyWindow {
		t.Error("http:// does not hold at 2 ms")
	}
	doublers := []Prober{newExecProber([]string{"true"}, nil)}
	if runtime.GOOS == "linux" { // elsewhere listen:// is a connect, as tcp://
		doublers = append(doublers, newListenProber("127.0.0.1", 1))
	}
	for _, p := range doublers {
		if hold(p) != 0 {
			t.Errorf("%T holds at 2 ms: it should double", p)
		}
	}
}
