package gauntlet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
)

// setup is what a scenario changes in the per-test config.
type setup struct {
	demoEnv      []string          // OXIOS_DEMO_* knobs, on top of LISTEN and DATA_DIR
	restart      string            // init.restart ("" = never)
	extra        map[string]string // init.extra: more OXIOS_INIT_* options
	stopTimeout  string            // container.stop_timeout ("" = 2s)
	startTimeout string            // container.start_timeout ("" = 30s)
	logDir       string            // container.log_dir ("" = under the temp dir)
	logMaxSize   string            // logs.max_size ("" = default)
	args         []string          // container.args (replaces the image's CMD)
}

// env is one scenario's world: a private containerd, a config file with
// its own container ID (cgroup paths are global), free port, namespace
// and directories, and the real bin/oxios.
type env struct {
	t       *testing.T
	ctrd    *ctrtest.Containerd
	bin     string // bin/oxios
	dir     string
	id      string
	ns      string
	port    int
	cfgPath string
	dataDir string
	logDir  string
	runDir  string
	s       setup
}

// Per-test defaults: short periods so scenarios recover in well under a
// second of probe time; the defaults (10 s periods) would make the suite
// take minutes per scenario.
var baseExtra = map[string]string{
	"readiness_period":  "100ms",
	"liveness_period":   "500ms",
	"verbosity":         "2",
	"backoff_initial":   "50ms",
	"backoff_max":       "500ms",
	"liveness_timeout":  "200ms",
	"readiness_timeout": "200ms",
}

func newEnv(t *testing.T, s setup) *env {
	t.Helper()
	testenv.RequireRoot(t)
	bin := testenv.Bin(t, "oxios")
	archive := testenv.ImageArchive(t)
	ctrd := ctrtest.StartDaemon(t)
	// Short path: the health socket under run_dir must fit in sun_path.
	dir, err := os.MkdirTemp("", "gx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{
		t: t, ctrd: ctrd, bin: bin, dir: dir,
		id:      randID("g"),
		ns:      "gauntlet",
		port:    testenv.FreePort(t),
		cfgPath: filepath.Join(dir, "oxios.toml"),
		dataDir: filepath.Join(dir, "data"),
		logDir:  filepath.Join(dir, "logs"),
		runDir:  filepath.Join(dir, "run"),
		s:       s,
	}
	if s.logDir != "" {
		e.logDir = s.logDir
	}
	if err := e.writeConfig(archive); err != nil {
		t.Fatal(err)
	}
	// Whatever the scenario did, remove our container before containerd
	// goes (ctrtest would too; this also exercises `oxios stop`).
	t.Cleanup(func() { e.oxios(60*time.Second, "stop") })
	return e
}

func (e *env) writeConfig(archive string) error {
	q := strconv.Quote
	s := e.s
	env := append([]string{"OXIOS_DEMO_LISTEN=127.0.0.1:{port}", "OXIOS_DEMO_DATA_DIR={data}"}, s.demoEnv...)
	var qenv []string
	for _, v := range env {
		qenv = append(qenv, q(v))
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[containerd]\naddress = %s\nnamespace = %s\n\n", q(e.ctrd.Address), q(e.ns))
	fmt.Fprintf(&b, "[image]\narchive = %s\n\n", q(archive))
	fmt.Fprintf(&b, "[container]\nid = %s\nport = %d\ndata_dir = %s\nlog_dir = %s\nrun_dir = %s\n",
		q(e.id), e.port, q(e.dataDir), q(e.logDir), q(e.runDir))
	fmt.Fprintf(&b, "env = [%s]\nstart_timeout = %s\nstop_timeout = %s\n",
		strings.Join(qenv, ", "), q(or(s.startTimeout, "30s")), q(or(s.stopTimeout, "2s")))
	var qargs []string
	for _, a := range s.args {
		qargs = append(qargs, q(a))
	}
	if len(qargs) > 0 {
		fmt.Fprintf(&b, "args = [%s]\n", strings.Join(qargs, ", "))
	}
	b.WriteString("\n")
	if s.logMaxSize != "" {
		fmt.Fprintf(&b, "[logs]\nmax_size = %s\n\n", q(s.logMaxSize))
	}
	fmt.Fprintf(&b, "[init]\nrestart = %s\n\n[init.extra]\n", q(or(s.restart, "never")))
	extra := map[string]string{}
	for k, v := range baseExtra {
		extra[k] = v
	}
	for k, v := range s.extra {
		extra[k] = v
	}
	var keys []string
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, q(extra[k]))
	}
	return os.WriteFile(e.cfgPath, []byte(b.String()), 0o644)
}

// result is one finished CLI run.
type result struct {
	args   []string
	code   int
	stdout string
	stderr string
	took   time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("oxios %s: exit %d (%v)\nstdout: %s\nstderr: %s",
		strings.Join(r.args, " "), r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// cliEnv is the environment of every oxios run: the config comes from
// --config alone, and no systemd variable reaches the CLI.
func cliEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "OXIOS_CONFIG", "CONTAINERD_ADDRESS", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID":
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (e *env) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.bin, append([]string{"--config", e.cfgPath}, args...)...)
	cmd.Env = cliEnv()
	return cmd
}

// oxios runs bin/oxios with the scenario's config and waits for it.
func (e *env) oxios(timeout time.Duration, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String(), took: time.Since(t0)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		r.code = -1
		r.stderr += "\n(run: " + err.Error() + ")"
	}
	if ctx.Err() != nil {
		r.stderr += fmt.Sprintf("\n(killed after %v)", timeout)
	}
	return r
}

// mustStart runs `oxios start` and fails the test unless it is ready.
func (e *env) mustStart(rw *row) result {
	e.t.Helper()
	r := e.oxios(90*time.Second, "start")
	if r.code != 0 {
		rw.fail(e.t, "start failed: %s", r)
	}
	return r
}

// statusJSON is `oxios status --json` (the documented schema); raw keeps
// every key for fields the schema may add.
type statusJSON struct {
	State    string  `json:"state"`
	PID      uint32  `json:"pid"`
	ExitCode *uint32 `json:"exit_code"`
	Ready    bool    `json:"ready"`
	Restarts int     `json:"restarts"`
	Port     int     `json:"port"`
	raw      map[string]any
}

func (e *env) status() (statusJSON, result) {
	r := e.oxios(30*time.Second, "status", "--json")
	var s statusJSON
	if r.code == 0 || r.code == 3 {
		json.Unmarshal([]byte(r.stdout), &s)
		json.Unmarshal([]byte(r.stdout), &s.raw)
	}
	return s, r
}

// supReport is oxios-init's /status (health endpoint on the unix socket
// in the run directory), read directly where the CLI would be too slow
// to sample.
type supReport struct {
	Child struct {
		PID      int     `json:"pid"`
		State    string  `json:"state"`
		Restarts int     `json:"restarts"`
		Backoff  float64 `json:"backoff_seconds"`
	} `json:"child"`
	Ready bool `json:"ready"`
	Live  bool `json:"live"`
}

func (e *env) healthSocket() string { return filepath.Join(e.runDir, e.id, "ctr", "health.sock") }

func (e *env) supervisor() (supReport, error) {
	sock := e.healthSocket()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, // a kept connection would be an fd in oxios-init (soak)
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	var rep supReport
	resp, err := hc.Get("http://oxios-init/status")
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	return rep, json.NewDecoder(resp.Body).Decode(&rep)
}

// get GETs a path of the daemon on its port.
func (e *env) get(path string, timeout time.Duration) (int, error) {
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d%s", e.port, path))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (e *env) post(path string) (int, error) {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Post(fmt.Sprintf("http://127.0.0.1:%d%s", e.port, path), "text/plain", nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// heartbeat is the demo's oxios-demo.json in the data directory.
type heartbeat struct {
	PID   int    `json:"pid"`
	State string `json:"state"`
	Seq   int    `json:"seq"`
}

func (e *env) heartbeat() (heartbeat, []byte, error) {
	var h heartbeat
	b, err := os.ReadFile(filepath.Join(e.dataDir, "oxios-demo.json"))
	if err != nil {
		return h, nil, err
	}
	return h, b, json.Unmarshal(b, &h)
}

func (e *env) logPath() string { return filepath.Join(e.logDir, e.id+".log") }

// client is a containerd client on the private daemon, for counting.
func (e *env) client() (*client.Client, context.Context) {
	e.t.Helper()
	cl, err := client.New(e.ctrd.Address, client.WithDefaultNamespace(e.ns))
	if err != nil {
		e.t.Fatalf("containerd client: %v", err)
	}
	e.t.Cleanup(func() { cl.Close() })
	return cl, namespaces.WithNamespace(context.Background(), e.ns)
}

// leaks counts what a stopped oxios must not leave behind.
type leaks struct {
	Containers, Tasks, Snapshots, Shims, Mounts int
}

func (l leaks) zero() bool { return l == leaks{} }

func (l leaks) String() string {
	return fmt.Sprintf("%d containers, %d tasks, %d snapshots, %d shims, %d mounts",
		l.Containers, l.Tasks, l.Snapshots, l.Shims, l.Mounts)
}

// countLeaks asks containerd for containers, tasks and active snapshots
// (the image's committed layers are not leaks), and /proc for shims bound
// to this containerd and namespace and for mounts under its directories.
func (e *env) countLeaks(cl *client.Client, ctx context.Context) (leaks, error) {
	var l leaks
	ctrs, err := cl.Containers(ctx)
	if err != nil {
		return l, fmt.Errorf("list containers: %w", err)
	}
	l.Containers = len(ctrs)
	tasks, err := cl.TaskService().List(ctx, nil)
	if err != nil {
		return l, fmt.Errorf("list tasks: %w", err)
	}
	l.Tasks = len(tasks.Tasks)
	err = cl.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, i snapshots.Info) error {
		if i.Kind != snapshots.KindCommitted {
			l.Snapshots++
		}
		return nil
	})
	if err != nil {
		return l, fmt.Errorf("walk snapshots: %w", err)
	}
	l.Shims = len(shimPIDs(e.ctrd.Address, e.ns))
	l.Mounts = len(mountsUnder(filepath.Dir(e.ctrd.Address)))
	return l, nil
}

// shimPIDs are the containerd-shim processes whose command line carries
// -namespace NS and -address ADDR.
func shimPIDs(addr, ns string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		var gotNS, gotAddr bool
		for i := 0; i+1 < len(args); i++ {
			gotNS = gotNS || (args[i] == "-namespace" && args[i+1] == ns)
			gotAddr = gotAddr || (args[i] == "-address" && args[i+1] == addr)
		}
		if gotNS && gotAddr {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsUnder lists mount points below dir in /proc/self/mountinfo.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mps = append(mps, f[4])
		}
	}
	return mps
}

// eventually polls cond every interval until it holds or timeout passes.
// Used for observable state (HTTP answers, /proc, containerd lists) where
// no event exists; the interval is the measurement's resolution.
func eventually(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// procStat reads utime+stime (own and of reaped children) in clock ticks.
func procStat(pid int) (self, children uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the ")" of comm: state is field 3; utime 14, stime 15,
	// cutime 16, cstime 17 (proc(5)).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	num := func(i int) uint64 { v, _ := strconv.ParseUint(f[i-3], 10, 64); return v }
	return num(14) + num(15), num(16) + num(17), nil
}

// clockTick is USER_HZ: 100 on every Linux this runs on.
const clockTick = 10 * time.Millisecond

// procFDs counts /proc/PID/fd; procRSS reads VmRSS in KiB.
func procFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

func procRSS(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func randID(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func testenvRoot(t *testing.T) { t.Helper(); testenv.RequireRoot(t) }
