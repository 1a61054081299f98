//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
)

// cli is one oxios configuration against a private containerd.
type cli struct {
	t      *testing.T
	bin    string
	ctrd   *ctrtest.Containerd
	config string
	id     string
	port   int
	dir    string
}

func newCLI(t *testing.T, extra string) *cli {
	t.Helper()
	bin := testenv.Bin(t, "oxios")
	ctrd := ctrtest.StartDaemon(t)
	archive := testenv.ImageArchive(t)
	dir, err := os.MkdirTemp("", "oxc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b := make([]byte, 4)
	rand.Read(b)
	c := &cli{t: t, bin: bin, ctrd: ctrd, id: "c-" + hex.EncodeToString(b), port: testenv.FreePort(t), dir: dir}
	c.config = filepath.Join(dir, "oxios.toml")
	text := fmt.Sprintf(`[containerd]
address = %q
[image]
archive = %q
[container]
id = %q
port = %d
data_dir = "data"
log_dir = "logs"
run_dir = "run"
stop_timeout = "3s"
env = ["OXIOS_DEMO_LISTEN=127.0.0.1:{port}"]
[init]
extra = { readiness_period = "50ms", liveness_period = "500ms" }
%s`, ctrd.Address, archive, c.id, c.port, extra)
	if err := os.WriteFile(c.config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs bin/oxios with the test's config; it returns stdout, stderr
// and the exit code.
func (c *cli) run(args ...string) (string, string, int) {
	c.t.Helper()
	if !strings.Contains(strings.Join(args, " "), "--config") {
		args = append(args, "--config", c.config)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "CONTAINERD_ADDRESS=", "NOTIFY_SOCKET=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := testenv.ExitCode(c.t, cmd.Run())
	return out.String(), errb.String(), code
}

// firstLine is what scripts and the old layer's users read of status.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func (c *cli) url() string { return fmt.Sprintf("http://127.0.0.1:%d", c.port) }

func (c *cli) hasContainer() bool {
	c.t.Helper()
	cl, err := client.New(c.ctrd.Address)
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	ctx := namespaces.WithNamespace(context.Background(), "oxios")
	_, err = cl.LoadContainer(ctx, c.id)
	if err != nil && !errdefs.IsNotFound(err) {
		c.t.Fatal(err)
	}
	return err == nil
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The "done when" of issue 2, through the real CLI.
func TestCLIStartStatusStop(t *testing.T) {
	c := newCLI(t, "")
	out, errs, code := c.run("start")
	if code != 0 || !strings.Contains(out, "ready") || !strings.Contains(out, c.url()) {
		t.Fatalf("start: %d\n%s\n%s", code, out, errs)
	}
	if httpStatus(c.url()) != 200 {
		t.Fatalf("%s does not answer 200", c.url())
	}
	out, _, code = c.run("status")
	if code != 0 || !strings.HasPrefix(out, "running (PID ") {
		t.Fatalf("status: %d %q", code, out)
	}
	out, _, code = c.run("status", "--json")
	if code != 0 || !strings.Contains(out, `"state": "running"`) || !strings.Contains(out, `"image_digest": "sha256:`) || !strings.Contains(out, `"started_at": "`) {
		t.Fatalf("status --json: %d %s", code, out)
	}
	out, _, code = c.run("start")
	if code != 0 || !strings.Contains(out, "already running") {
		t.Fatalf("second start: %d %q", code, out)
	}
	out, errs, code = c.run("stop")
	if code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("stop: %d %s %s", code, out, errs)
	}
	if c.hasContainer() {
		t.Fatal("container left after stop")
	}
	out, _, code = c.run("status")
	if code != 3 || firstLine(out) != "stopped" {
		t.Fatalf("status after stop: %d %q", code, out)
	}
	out, _, code = c.run("stop")
	if code != 0 || !strings.Contains(out, "not running") {
		t.Fatalf("second stop: %d %q", code, out)
	}
	out, _, code = c.run("log", "-n", "5")
	if code != 0 || out == "" {
		t.Fatalf("log -n 5: %d %q", code, out)
	}
}

func TestCLIBadInput(t *testing.T) {
	c := newCLI(t, "")
	t.Run("containerd unreachable", func(t *testing.T) {
		c.t = t
		_, errs, code := c.run("start", "--address", "/nonexistent/containerd.sock")
		if code == 0 || strings.Count(strings.TrimSpace(errs), "\n") != 0 ||
			!strings.Contains(errs, "/nonexistent/containerd.sock") || !strings.Contains(errs, "start the containerd that serves it") {
			t.Fatalf("%d %q", code, errs)
		}
		if _, _, code := c.run("status", "--address", "/nonexistent/containerd.sock"); code != 4 {
			t.Fatalf("status with containerd down: exit %d, want 4 (unknown)", code)
		}
	})
	t.Run("port taken", func(t *testing.T) {
		c.t = t
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", c.port))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, errs, code := c.run("start")
		if code == 0 || !strings.Contains(errs, fmt.Sprintf("port %d", c.port)) || c.hasContainer() {
			t.Fatalf("%d %q", code, errs)
		}
	})
	t.Run("archive missing", func(t *testing.T) {
		c.t = t
		bad := newCLI(t, "")
		text, _ := os.ReadFile(bad.config)
		os.WriteFile(bad.config, []byte(strings.Replace(string(text), "oxios-image.tar", "missing.tar", 1)), 0o644)
		_, errs, code := bad.run("start")
		if code == 0 || !strings.Contains(errs, "missing.tar") || !strings.Contains(errs, "make image") {
			t.Fatalf("%d %q", code, errs)
		}
	})
	t.Run("config syntax", func(t *testing.T) {
		c.t = t
		p := filepath.Join(t.TempDir(), "bad.toml")
		os.WriteFile(p, []byte("[container]\nport = \"x\n"), 0o644)
		_, errs, code := c.run("start", "--config", p)
		if code == 0 || !strings.Contains(errs, p+":2") {
			t.Fatalf("%d %q", code, errs)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		c.t = t
		p := filepath.Join(t.TempDir(), "bad.toml")
		os.WriteFile(p, []byte("[container]\nprot = 1\n"), 0o644)
		_, errs, code := c.run("status", "--config", p)
		if code == 0 || !strings.Contains(errs, p+":2: key container.prot: unknown key") {
			t.Fatalf("%d %q", code, errs)
		}
	})
}

// restart gives a new task; status says "orphaned" when no task exists
// but something holds the port.
func TestCLIRestartAndOrphaned(t *testing.T) {
	c := newCLI(t, "")
	out, errs, code := c.run("start")
	if code != 0 {
		t.Fatalf("start: %s%s", out, errs)
	}
	out2, errs, code := c.run("restart")
	if code != 0 || !strings.HasPrefix(out2, "oxios started (PID ") || out2 == out {
		t.Fatalf("restart: %d %q %s", code, out2, errs)
	}
	if _, _, code := c.run("stop"); code != 0 {
		t.Fatal("stop")
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", c.port))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out, _, code = c.run("status")
	if code != 3 || firstLine(out) != fmt.Sprintf("orphaned (no task, port %d in use)", c.port) {
		t.Fatalf("status: %d %q", code, out)
	}
}

// The shim runs bin/oxios-logd as the log driver when it sits next to
// bin/oxios, and bin/oxios itself when it is alone (an installed copy):
// both keep the daemon's log.
func TestCLILogDriverBinary(t *testing.T) {
	logd := testenv.Bin(t, "oxios-logd")
	if _, err := os.Stat(logd); err != nil {
		t.Fatalf("make build did not build %s: %v", logd, err)
	}
	c := newCLI(t, "")
	alone := filepath.Join(t.TempDir(), "oxios")
	b, err := os.ReadFile(c.bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct{ bin, driver string }{{c.bin, logd}, {alone, alone}} {
		c.bin = tc.bin
		tc.driver, _ = filepath.EvalSymlinks(tc.driver)
		out, errs, code := c.run("start")
		if code != 0 {
			t.Fatalf("%s start: %d\n%s%s", tc.bin, code, out, errs)
		}
		if got := logDriverOf(t, filepath.Join(c.dir, "logs", c.id+".log")); got != tc.driver {
			t.Errorf("%s: the shim runs %q as the log driver, want %s", tc.bin, got, tc.driver)
		}
		if _, errs, code := c.run("stop"); code != 0 {
			t.Fatalf("stop: %s", errs)
		}
		out, _, code = c.run("logs", "-n", "200")
		if n := strings.Count(out, "msg=listening"); code != 0 || n != i+1 {
			t.Fatalf("%s: the log holds %d of the daemon's %d runs: %d %q", tc.bin, n, i+1, code, out)
		}
	}
}

// logDriverOf finds the process writing logPath (the driver gets it as
// its "file" argument) and returns its executable.
func logDriverOf(t *testing.T, logPath string) string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("\x00file\x00"+logPath+"\x00")) {
			continue
		}
		exe, err := os.Readlink(filepath.Join(filepath.Dir(p), "exe"))
		if err == nil {
			return exe
		}
	}
	t.Fatalf("no process writes %s", logPath)
	return ""
}

// status at a glance: the first line as before, then readiness, uptime,
// probes, image, URL, log, containerd and the log tail; --json the same.
func TestCLIStatusDescribes(t *testing.T) {
	c := newCLI(t, "")
	if out, errs, code := c.run("start"); code != 0 {
		t.Fatalf("start: %s%s", out, errs)
	}
	out, errs, code := c.run("status")
	t.Logf("status:\n%s", out)
	if code != 0 || !strings.HasPrefix(out, "running (PID ") {
		t.Fatalf("status: %d %q %s", code, out, errs)
	}
	for _, want := range []string{
		"       ready: yes, since ", "      uptime: ", "restarts inside the container",
		"     probes: readiness http://127.0.0.1:", "/health/ready success",
		"             liveness  http://127.0.0.1:", "       image: localhost/oxios:latest sha256:",
		"         url: " + c.url(), "         log: " + filepath.Join(c.dir, "logs", c.id+".log"),
		"  containerd: " + c.ctrd.Address + " (set by file " + c.config,
		"-- last ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	logLines := func() int {
		b, _ := os.ReadFile(filepath.Join(c.dir, "logs", c.id+".log"))
		return strings.Count(string(b), "\n")
	}
	_, tail, _ := strings.Cut(out, "-- last ")
	if n, want := strings.Count(tail, "\n")-1, min(10, logLines()); n != want || want == 0 {
		t.Errorf("status shows %d log lines, want %d", n, want)
	}
	if out, _, _ := c.run("status", "-n", "2"); !strings.Contains(out, "-- last 2 log lines") {
		t.Errorf("status -n 2:\n%s", out)
	}
	if out, _, _ := c.run("status", "--no-logs"); strings.Contains(out, "log lines") {
		t.Errorf("status --no-logs shows log lines:\n%s", out)
	}
	out, _, code = c.run("status", "--json", "--lines=4")
	var st struct {
		State         string     `json:"state"`
		Ready         bool       `json:"ready"`
		ReadySince    *time.Time `json:"ready_since"`
		Uptime        float64    `json:"uptime_seconds"`
		CreatedAt     *time.Time `json:"created_at"`
		Restarts      *int       `json:"restarts"`
		ImageDigest   string     `json:"image_digest"`
		LogTail       []string   `json:"log_tail"`
		Containerd    struct{ Address, Source, Reason string }
		Probes        map[string]struct{ Spec, Result string }
		URL, Log, Img string
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("status --json: %d %v\n%s", code, err, out)
	}
	if st.State != "running" || !st.Ready || st.ReadySince == nil || st.Uptime <= 0 || st.CreatedAt == nil ||
		st.Restarts == nil || !strings.HasPrefix(st.ImageDigest, "sha256:") || len(st.LogTail) != min(4, logLines()) ||
		st.Containerd.Address != c.ctrd.Address || st.Containerd.Source != "file" ||
		st.Probes["readiness"].Result != "success" || st.Probes["liveness"].Spec == "" {
		t.Errorf("status --json lacks a field:\n%s", out)
	}
	if _, errs, code := c.run("stop"); code != 0 {
		t.Fatalf("stop: %s", errs)
	}
	out, _, code = c.run("status")
	t.Logf("status after stop:\n%s", out)
	if code != 3 || firstLine(out) != "stopped" || !strings.Contains(out, "       image: localhost/oxios:latest sha256:") ||
		!strings.Contains(out, fmt.Sprintf("-- last %d log lines", min(10, logLines()))) || strings.Contains(out, "ready:") {
		t.Errorf("status after stop: %d\n%s", code, out)
	}
}

// With containerd.address unset, oxios finds a containerd: the system
// socket, else make run's private one; status --json and -v say which
// and why, and the error when none answers says what to run.
func TestCLIFindsContainerd(t *testing.T) {
	ctrd := ctrtest.StartDaemon(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "oxios.toml")
	os.WriteFile(cfg, []byte("[container]\nid = \"found\"\nport = 1\ndata_dir = \"d\"\nlog_dir = \"l\"\nrun_dir = \"r\"\n"), 0o644)
	t.Setenv("CONTAINERD_ADDRESS", "")
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	defer func(s, p string) { systemAddress, privateAddress = s, p }(systemAddress, privateAddress)
	for _, tc := range []struct {
		system, private string
		source, reason  string
	}{
		{filepath.Join(dir, "absent.sock"), ctrd.Address, "private", "no system containerd at " + filepath.Join(dir, "absent.sock")},
		{stale, ctrd.Address, "private", "the system one at " + stale + " does not answer"},
		{ctrd.Address, filepath.Join(dir, "absent.sock"), "system", "the system containerd"},
	} {
		systemAddress, privateAddress = tc.system, tc.private
		out, errs, code := oxios(t, "status", "--json", "-v", "--config", cfg)
		var st struct{ Containerd addressChoice }
		if err := json.Unmarshal([]byte(out), &st); err != nil || code != 3 {
			t.Fatalf("%+v: exit %d %v\n%s%s", tc, code, err, out, errs)
		}
		if st.Containerd.Address != ctrd.Address || st.Containerd.Source != tc.source || !strings.Contains(st.Containerd.Reason, tc.reason) {
			t.Errorf("%+v: containerd %+v", tc, st.Containerd)
		}
		if !strings.Contains(errs, "oxios: containerd "+ctrd.Address+" (") {
			t.Errorf("%+v: -v does not say which containerd: %q", tc, errs)
		}
	}
	for _, tc := range []struct{ system, private, hint string }{
		{filepath.Join(dir, "absent.sock"), filepath.Join(dir, "absent2.sock"), "no containerd runs: start the system one"},
		{filepath.Join(dir, "absent.sock"), stale, "the private containerd does not answer: start it again with `sudo bash scripts/containerd.sh start`"},
		{stale, filepath.Join(dir, "absent.sock"), "the system containerd does not answer"},
	} {
		systemAddress, privateAddress = tc.system, tc.private
		_, errs, code := oxios(t, "status", "--config", cfg)
		// One line for containerd, one for what can be told without it.
		if code != 4 || !strings.Contains(errs, tc.hint) || strings.Contains(errs, "make run`") || strings.Count(errs, "\n") != 2 ||
			!strings.Contains(errs, "nothing answers on 127.0.0.1:") {
			t.Errorf("%+v: exit %d, %q", tc, code, errs)
		}
	}
}
