//go:build linux

package upgrade

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/logdriver"
	"github.com/a7garden/oxios/runtime/task"
)

// The shim runs this test binary as the log driver; and a test re-runs it
// as an `oxios upgrade` that SIGKILLs itself at a step (childEnv).
func TestMain(m *testing.M) {
	if logdriver.IsInvocation(os.Args[1:]) {
		if err := logdriver.Main(os.Args[1:]); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

type env struct {
	cfg     *config.Config
	dir     string
	archive string
	ctrd    *ctrtest.Containerd
}

// newEnv: a private containerd, the real image, a config with its own
// ID, port and directories, a short verification window, and the daemon
// running on the image as built; edits change the config (and may
// prepare its directories) before that start.
func newEnv(t *testing.T, edits ...func(*config.Config)) *env {
	t.Helper()
	testenv.RequireRoot(t)
	ctrd := ctrtest.StartDaemon(t)
	archive := testenv.ImageArchive(t)
	dir, err := os.MkdirTemp("", "oxu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := config.Default()
	c.Containerd.Address = ctrd.Address
	c.Image.Archive = archive
	c.Container.ID = testenv.RandID("u")
	c.Container.Port = testenv.FreePort(t)
	c.Container.DataDir = filepath.Join(dir, "data")
	c.Container.LogDir = filepath.Join(dir, "logs")
	c.Container.RunDir = filepath.Join(dir, "run")
	c.Container.StartTimeout = config.Duration(10 * time.Second)
	c.Container.StopTimeout = config.Duration(3 * time.Second)
	c.Upgrade.StateDir = filepath.Join(dir, "state")
	c.Upgrade.VerifyFor = config.Duration(2 * time.Second)
	c.Init.Extra = map[string]string{"readiness_period": "50ms", "liveness_period": "500ms"}
	c.Container.Env = []string{"OXIOS_DEMO_LISTEN=127.0.0.1:{port}"}
	for _, edit := range edits {
		edit(c)
	}
	e := &env{cfg: c, dir: dir, archive: archive, ctrd: ctrd}
	r := e.connect(t)
	if _, err := r.Start(context.Background()); err != nil {
		log, _ := os.ReadFile(c.LogPath())
		t.Fatalf("start the old daemon: %v\n%s", err, log)
	}
	t.Cleanup(func() { r.Stop(context.Background()) })
	return e
}

func (e *env) connect(t testing.TB) *task.Runtime {
	t.Helper()
	exe, _ := os.Executable()
	r, err := task.Connect(context.Background(), task.Options{Config: e.cfg, LogDriver: exe, Out: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// variant is an archive of the test image with demo knobs in its
// environment (and so another digest), named localhost/NAME:test.
func (e *env) variant(t *testing.T, name string, knobs ...string) string {
	return testenv.ImageVariant(t, e.archive, e.dir, "localhost/"+name+":test", func(c map[string]any) {
		env, _ := c["Env"].([]any)
		for _, k := range knobs {
			env = append(env, k)
		}
		c["Env"] = env
		labels, _ := c["Labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		labels["test.variant"] = name
		c["Labels"] = labels
	})
}

func (e *env) opts(t *testing.T, r *task.Runtime) Options {
	return Options{Config: e.cfg, Runtime: r, Out: testWriter{t}}
}

// running is the one running task's version; the test fails when none
// runs.
func running(t *testing.T, r *task.Runtime) *task.Running {
	t.Helper()
	cur, err := r.Current(context.Background())
	if err != nil || cur == nil || !cur.Up {
		t.Fatalf("no daemon runs: %+v %v", cur, err)
	}
	return cur
}

// serves: the daemon answers /health/ready with 200.
func (e *env) serves(t *testing.T) {
	t.Helper()
	resp, err := http.Get(e.cfg.URL() + "/health/ready")
	if err != nil {
		t.Fatalf("daemon does not answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/health/ready: %d", resp.StatusCode)
	}
}

// dataFile writes a file into the data dir and returns a check that it
// is still there with the same content.
func (e *env) dataFile(t *testing.T) func() {
	p := filepath.Join(e.cfg.Container.DataDir, "precious.db")
	want := []byte("rows " + time.Now().String())
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("data file %s: %q, %v; want %q", p, got, err, want)
		}
	}
}

func lastHistory(t *testing.T, cfg *config.Config) Record {
	t.Helper()
	h, err := History(cfg, 1)
	if err != nil || len(h) != 1 {
		t.Fatalf("history: %v %v", h, err)
	}
	return h[0]
}

// The child: an upgrade with the config in $childEnv that SIGKILLs itself
// when it reaches the step in $childKillAt (before the step runs).
const (
	childEnv    = "OXIOS_UPGRADE_TEST_CONFIG"
	childKillAt = "OXIOS_UPGRADE_TEST_KILL_AT"
	childSource = "OXIOS_UPGRADE_TEST_ARCHIVE"
)

func child() int {
	b, err := os.ReadFile(os.Getenv(childEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var cfg config.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	exe, _ := os.Executable()
	r, err := task.Connect(context.Background(), task.Options{Config: &cfg, LogDriver: exe, Out: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	killAt := Step(os.Getenv(childKillAt))
	_, err = Upgrade(context.Background(), Options{Config: &cfg, Runtime: r, Archive: os.Getenv(childSource), Out: os.Stderr,
		OnStep: func(s Step) {
			switch {
			case s == killAt:
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			case s == StepStopping && killAt == killDraining:
				n := drainsIn(cfg.LogPath())
				go func() {
					awaitDrainIn(cfg.LogPath(), n)
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}()
			}
		}})
	fmt.Fprintln(os.Stderr, "upgrade:", err)
	return 0
}

// killDraining, as the child's kill point, is once the old daemon logged
// its stop signal: in the middle of the stop.
const killDraining Step = "draining"

// runChild runs an upgrade to archive in a child process that is killed
// at step; it fails the test when the child was not killed.
func (e *env) runChild(t *testing.T, archive string, step Step) {
	t.Helper()
	b, err := json.Marshal(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cf := filepath.Join(e.dir, "config.json")
	if err := os.WriteFile(cf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+cf, childKillAt+"="+string(step), childSource+"="+archive)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed at %s: %v\n%s", step, err, out.String())
	}
}
