//go:build linux

// Package ctrtest starts a private containerd for one test: its own config,
// root, state and gRPC socket under temp directories, torn down (tasks,
// shims, mounts, directories) when the test ends. No test touches the
// system containerd.
package ctrtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

// Binary is the containerd that tests run (the Debian package's path).
const Binary = "/usr/bin/containerd"

// bootTimeout bounds how long containerd may take to load its plugins:
// far more than it takes (well under a second), so a loaded machine does
// not fail a test.
const bootTimeout = 30 * time.Second

// Containerd is one private containerd daemon.
type Containerd struct {
	Address string // gRPC socket path
	Root    string // containerd root (content, snapshots)
	State   string // containerd state (shim bundles)
	Config  string // the config file it runs with
	LogPath string // containerd's own stdout+stderr

	t    testing.TB
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start launches a private containerd and returns its address once it
// answers a Version call. Everything is removed in t.Cleanup.
func Start(t testing.TB) string {
	return StartDaemon(t).Address
}

// StartDaemon is Start returning the handle, for tests that restart it.
func StartDaemon(t testing.TB) *Containerd {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, Binary)
	c := newDirs(t)
	if err := c.writeConfig(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.teardown)
	if err := c.launch(); err != nil {
		t.Fatal(err)
	}
	return c
}

// newDirs creates the directories. The socket lives under a short
// os.MkdirTemp path: t.TempDir() embeds the test name and can exceed the
// 108-byte sun_path limit of a UNIX socket address.
func newDirs(t testing.TB) *Containerd {
	base, err := os.MkdirTemp("", "ctrd")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{
		t:       t,
		Address: filepath.Join(base, "c.sock"),
		Root:    filepath.Join(base, "root"),
		State:   filepath.Join(base, "state"),
		Config:  filepath.Join(base, "config.toml"),
		LogPath: filepath.Join(base, "containerd.log"),
	}
	for _, d := range []string{c.Root, c.State} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// disabled lists plugins a test never needs: CRI (slow, wants CNI), the
// snapshotters that need special filesystems, and the /opt installer.
var disabled = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.internal.v1.opt",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.internal.v1.tracing",
}

func (c *Containerd) writeConfig() error {
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	var dis []string
	for _, p := range disabled {
		dis = append(dis, q(p))
	}
	cfg := fmt.Sprintf(`version = 2
root = %s
state = %s
disabled_plugins = [%s]

[grpc]
  address = %s

[ttrpc]
  address = %s

[debug]
  level = "info"

[plugins."io.containerd.service.v1.diff-service"]
  default = ["walking"]
`, q(c.Root), q(c.State), strings.Join(dis, ", "), q(c.Address), q(c.Address+".ttrpc"))
	return os.WriteFile(c.Config, []byte(cfg), 0o600)
}

// launch starts containerd and blocks until it has booted: containerd logs
// "containerd successfully booted" after its sockets serve, so reading its
// log stream is an event, not a poll. A Version call then confirms it.
func (c *Containerd) launch() error {
	logf, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	cmd := exec.Command(Binary, "--config", c.Config)
	cmd.Stdout = logf
	cmd.Stderr = io.MultiWriter(logf, pw)
	// Own process group: a ^C to the test does not hit containerd first,
	// and the shims it starts are not in the test's group either.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", Binary, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); pw.Close(); close(done) }()
	c.mu.Lock()
	c.cmd, c.done = cmd, done
	c.mu.Unlock()
	booted := make(chan struct{})
	go scanBoot(pr, booted)
	select {
	case <-booted:
	case <-done:
		return fmt.Errorf("containerd exited during boot; log %s:\n%s", c.LogPath, c.tail())
	case <-time.After(bootTimeout):
		return fmt.Errorf("containerd did not boot within %v; log %s:\n%s", bootTimeout, c.LogPath, c.tail())
	}
	return c.ping()
}

func scanBoot(r io.Reader, booted chan struct{}) {
	s := bufio.NewScanner(r)
	once := false
	for s.Scan() {
		if !once && strings.Contains(s.Text(), "successfully booted") {
			close(booted)
			once = true
		}
	}
	io.Copy(io.Discard, r) // keep the pipe drained so containerd never blocks
}

func (c *Containerd) ping() error {
	cl, err := client.New(c.Address)
	if err != nil {
		return fmt.Errorf("connect %s: %w", c.Address, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Version(ctx); err != nil {
		return fmt.Errorf("containerd at %s: version: %w", c.Address, err)
	}
	return nil
}

// Kill9 kills containerd with SIGKILL and waits for it to be gone. The
// shims and their tasks keep running, as after a real crash.
func (c *Containerd) Kill9() {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Restart starts containerd again on the same config and directories
// (after Kill9), and waits until it serves.
func (c *Containerd) Restart() {
	c.t.Helper()
	c.Kill9()
	if err := c.launch(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Containerd) tail() string {
	b, _ := os.ReadFile(c.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// teardown removes every task (so no container outlives the test), stops
// containerd, kills any shim still bound to this containerd, unmounts what
// is left under the directories and removes them.
func (c *Containerd) teardown() {
	c.mu.Lock()
	running := c.cmd != nil && c.done != nil
	c.mu.Unlock()
	if running {
		select {
		case <-c.done:
		default:
			c.deleteAll()
		}
	}
	c.Kill9()
	killShims(c.Address)
	base := filepath.Dir(c.Address)
	unmountUnder(base)
	if c.t.Failed() {
		c.t.Logf("containerd log %s (tail):\n%s", c.LogPath, c.tail())
	}
	if err := os.RemoveAll(base); err != nil {
		c.t.Logf("ctrtest: remove %s: %v", base, err)
	}
}

// deleteAll kills and deletes every task and container in every namespace.
func (c *Containerd) deleteAll() {
	cl, err := client.New(c.Address)
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nss, _ := cl.NamespaceService().List(ctx)
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, _ := cl.Containers(nctx)
		for _, ctr := range ctrs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				task.Kill(nctx, syscall.SIGKILL, client.WithKillAll)
				if ch, err := task.Wait(nctx); err == nil {
					select {
					case <-ch:
					case <-time.After(5 * time.Second):
					}
				}
				task.Delete(nctx, client.WithProcessKill)
			}
			ctr.Delete(nctx, client.WithSnapshotCleanup)
		}
	}
}

// killShims kills containerd-shim processes started for this address
// (their command line carries "-address ADDR"); a shim outliving its test
// would keep a container, and its cgroup, alive.
func killShims(address string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i, a := range args {
			if a == "-address" && i+1 < len(args) && args[i+1] == address {
				var pid int
				fmt.Sscan(e.Name(), &pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mps = append(mps, f[4])
		}
	}
	for i := len(mps) - 1; i >= 0; i-- {
		unix.Unmount(mps[i], unix.MNT_DETACH)
	}
}
