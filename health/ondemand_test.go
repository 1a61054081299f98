//go:build linux

package health

import (
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/a7garden/oxios/internal/testenv"
)

// testDaemon is a real HTTP server standing in for the supervised daemon: each
// path answers the code a test sets, and counts its requests.
type testDaemon struct {
	srv   *httptest.Server
	mu    sync.Mutex
	codes map[string]int
	hits  map[string]*atomic.Int64
	block chan struct{} // non-nil: requests wait for it to close
}

func newDaemon(t *testing.T, paths ...string) *testDaemon {
	d := &testDaemon{codes: map[string]int{}, hits: map[string]*atomic.Int64{}}
	for _, p := range paths {
		d.codes[p] = 200
		d.hits[p] = new(atomic.Int64)
	}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.hits[r.URL.Path].Add(1)
		d.mu.Lock()
		code, block := d.codes[r.URL.Path], d.block
		d.mu.Unlock()
		if block != nil {
			<-block
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *testDaemon) set(path string, code int) {
	d.mu.Lock()
	d.codes[path] = code
	d.mu.Unlock()
}

func (d *testDaemon) url(path string) string { return d.srv.URL + path }

// onDemandMonitor starts a monitor with an endpoint and a child (this
// process), whose runners probe once an hour after their first success:
// whatever changes after that, only an on-demand probe can see.
func onDemandMonitor(t *testing.T, cfg Config) (*Monitor, string, *testenv.Buffer) {
	t.Helper()
	cfg.HealthListen = "127.0.0.1:0"
	// oxios-init's default verbosity: warnings and up.
	logs := &testenv.Buffer{}
	log := logrus.New()
	log.Out, log.Level = logs, logrus.WarnLevel
	m := startMonitor(t, cfg, Hooks{}, log)
	m.ChildStarted(os.Getpid())
	return m, m.Addr().String(), logs
}

func hourly(spec string) ProbeConfig {
	return ProbeConfig{Spec: spec, Period: time.Hour, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 1}
}

func ask(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp := rawRequest(t, "tcp", addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
	switch {
	case strings.HasPrefix(resp, "HTTP/1.1 200 "):
		return 200, resp
	case strings.HasPrefix(resp, "HTTP/1.1 503 "):
		return 503, resp
	}
	t.Fatalf("GET %s: %q", path, resp)
	return 0, ""
}

// /readyz and /livez answer for the daemon as it is when asked, not as
// oxios-init's own runner last saw it an hour-long period ago.
func TestOnDemandFollowsTheDaemonNow(t *testing.T) {
	d := newDaemon(t, "/ready", "/live")
	cfg := DefaultConfig()
	cfg.Readiness = hourly(d.url("/ready"))
	cfg.Liveness = hourly(d.url("/live"))
	m, addr, logs := onDemandMonitor(t, cfg)
	testenv.WaitFor(t, "the runner's first readiness success", 5*time.Second, m.Ready)

	d.set("/ready", 503)
	if code, body := ask(t, addr, "/readyz"); code != 503 || !strings.Contains(body, "not ready: HTTP 503") {
		t.Fatalf("/readyz right after the daemon turned unready: %d %q", code, body)
	}
	if !m.Ready() {
		t.Fatal("the runner saw the change too: this test proves nothing about on-demand answers")
	}
	d.set("/ready", 200)
	if code, _ := ask(t, addr, "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d once the daemon is ready again", code)
	}
	// Each transition the asker saw is a line at the default verbosity.
	for _, want := range []string{`msg="readiness asked: failure" detail="HTTP 503"`, `msg="readiness asked: success" detail="HTTP 200"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, logs.String())
		}
	}
	d.set("/live", 500)
	if code, body := ask(t, addr, "/livez"); code != 503 || !strings.Contains(body, "not live: HTTP 500") {
		t.Fatalf("/livez while the daemon's liveness fails: %d %q", code, body)
	}
	m.ChildExited(0)
	if code, _ := ask(t, addr, "/readyz"); code != 503 {
		t.Fatalf("/readyz = %d with no child", code)
	}
}

// Until startup succeeded, readiness and liveness are not probed at all:
// /readyz is 503 and /livez 200, as the kubelet gates them. An on-demand
// /startupz success opens the gate for this child at once.
func TestOnDemandStartupGates(t *testing.T) {
	d := newDaemon(t, "/started", "/ready", "/live")
	d.set("/started", 503)
	cfg := DefaultConfig()
	cfg.Startup = hourly(d.url("/started"))
	cfg.Startup.FailureThreshold = 100
	cfg.Readiness = hourly(d.url("/ready"))
	cfg.Liveness = hourly(d.url("/live"))
	// The runner's own liveness must not act on the failures set up here
	// (it starts once its startup runner sees the daemon started).
	cfg.Liveness.FailureThreshold = 100
	d.set("/live", 500)
	_, addr, _ := onDemandMonitor(t, cfg)

	if code, _ := ask(t, addr, "/startupz"); code != 503 {
		t.Fatalf("/startupz = %d before the daemon started", code)
	}
	if code, _ := ask(t, addr, "/livez"); code != 200 {
		t.Fatalf("/livez = %d before startup: liveness must not run yet", code)
	}
	if code, _ := ask(t, addr, "/readyz"); code != 503 {
		t.Fatalf("/readyz = %d before startup", code)
	}
	if n := d.hits["/live"].Load() + d.hits["/ready"].Load(); n != 0 {
		t.Fatalf("%d readiness or liveness requests before startup succeeded", n)
	}

	d.set("/started", 200)
	if code, _ := ask(t, addr, "/startupz"); code != 200 {
		t.Fatalf("/startupz = %d once the daemon started", code)
	}
	if code, body := ask(t, addr, "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d after an on-demand startup success: %q", code, body)
	}
	if code, _ := ask(t, addr, "/livez"); code != 503 {
		t.Fatalf("/livez = %d after startup, with liveness failing", code)
	}
	// Started once is started for this child.
	d.set("/started", 503)
	if code, _ := ask(t, addr, "/startupz"); code != 200 {
		t.Fatalf("/startupz = %d after the daemon had started", code)
	}
}

// A burst of askers costs the daemon one request, not one each.
func TestOnDemandAskersShareOneProbe(t *testing.T) {
	d := newDaemon(t, "/ready")
	cfg := DefaultConfig()
	cfg.Readiness = hourly(d.url("/ready"))
	m, addr, _ := onDemandMonitor(t, cfg)
	testenv.WaitFor(t, "the runner's first readiness success", 5*time.Second, m.Ready)
	before := d.hits["/ready"].Load()

	release := make(chan struct{})
	d.mu.Lock()
	d.block = release
	d.mu.Unlock()
	const n = 8
	codes := make(chan int, n)
	for range n {
		go func() { c, _ := ask(t, addr, "/readyz"); codes <- c }()
	}
	testenv.WaitFor(t, "the first on-demand request", 5*time.Second, func() bool { return d.hits["/ready"].Load() > before })
	// Every other asker waits for the probe in flight before it is released.
	testenv.WaitFor(t, "the other askers to wait", 5*time.Second, func() bool {
		m.od.mu.Lock()
		defer m.od.mu.Unlock()
		f := m.od.inflight[kindReadiness]
		return f != nil && f.waiters == n-1
	})
	close(release)
	for range n {
		if c := <-codes; c != 200 {
			t.Errorf("/readyz = %d", c)
		}
	}
	if got := d.hits["/ready"].Load() - before; got != 1 {
		t.Errorf("%d askers made %d requests to the daemon, want 1", n, got)
	}
}

// An ask reuses its kind's on-demand prober (its netlink socket and
// receive buffer) instead of making one, and still answers for the
// daemon as it is then.
func TestOnDemandKeepsItsProber(t *testing.T) {
	d := newDaemon(t, "/ready")
	cfg := DefaultConfig()
	cfg.Readiness = hourly(d.url("/ready"))
	m, _, _ := onDemandMonitor(t, cfg)
	testenv.WaitFor(t, "the runner's first readiness success", 5*time.Second, m.Ready)
	if code, _, _ := m.route("/readyz", newExchange()); code != 200 {
		t.Fatalf("/readyz = %d", code)
	}
	m.od.mu.Lock()
	first := m.od.probers[kindReadiness]
	m.od.mu.Unlock()
	if first == nil {
		t.Fatal("no on-demand prober kept after an ask")
	}
	const asks = 50
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range asks {
		if code, _, _ := m.route("/readyz", newExchange()); code != 200 {
			t.Fatalf("/readyz = %d", code)
		}
	}
	runtime.ReadMemStats(&after)
	// A new prober per ask allocated its 32 KiB receive buffer alone.
	if per := (after.TotalAlloc - before.TotalAlloc) / asks; per >= sockDiagRecvBytes {
		t.Errorf("%d bytes allocated per ask, want under %d", per, sockDiagRecvBytes)
	}
	m.od.mu.Lock()
	same := m.od.probers[kindReadiness] == first
	m.od.mu.Unlock()
	if !same {
		t.Error("the on-demand prober was replaced")
	}
	d.set("/ready", 503)
	if code, _, _ := m.route("/readyz", newExchange()); code != 503 {
		t.Fatalf("/readyz = %d once the daemon answers 503", code)
	}
}
