// Package testenv finds the repository's build outputs for tests and
// decides, in one place, when a test that needs root may skip: never under
// CI (CI=true), where every integration test must really run.
package testenv

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	rootOnce sync.Once
	root     string

	buildOnce sync.Once
	buildErr  error
	imageOnce sync.Once
	imageErr  error
)

// RepoRoot is the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				root = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return
			}
			dir = parent
		}
	})
	if root == "" {
		t.Fatal("testenv: no go.mod above the working directory")
	}
	return root
}

// InCI reports whether the tests run under CI, where skipping is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireRoot skips the test when not root, except under CI where it fails.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatal("this test needs root, and CI must run it: run as root")
	}
	t.Skip("needs root (and containerd/unshare); CI runs it as root")
}

// RequireTool skips when a binary is missing, except under CI where it
// fails: CI installs every tool the tests need (scripts/deps.sh).
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("%s not found on PATH: scripts/deps.sh should have installed it", name)
	}
	t.Skipf("%s not installed (run scripts/deps.sh as root)", name)
	return ""
}

// Bin returns the path of bin/NAME, running `make build` once per test
// binary so that the binaries carry the project's real build flags.
func Bin(t testing.TB, name string) string {
	t.Helper()
	r := RepoRoot(t)
	buildOnce.Do(func() { buildErr = runMake(r, "build") })
	if buildErr != nil {
		t.Fatalf("make build: %v", buildErr)
	}
	return filepath.Join(r, "bin", name)
}

// ImageArchive returns build/oxios-image.tar, running `make image` once
// per test binary when it is missing.
func ImageArchive(t testing.TB) string {
	t.Helper()
	r := RepoRoot(t)
	p := filepath.Join(r, "build", "oxios-image.tar")
	imageOnce.Do(func() {
		if _, err := os.Stat(p); err == nil {
			return
		}
		imageErr = runMake(r, "image")
	})
	if imageErr != nil {
		t.Fatalf("make image: %v", imageErr)
	}
	return p
}

func runMake(dir, target string) error {
	cmd := exec.Command("make", "-s", target)
	cmd.Dir = dir
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Tests never use a fixed port: packages run side by side on host
// networking, and containers in tests share the host's network namespace.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Alive reports whether pid exists and is not a zombie. kill(pid, 0)
// cannot tell: it succeeds on a zombie that nobody has reaped yet.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which may itself hold ") ".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// Buffer is a bytes.Buffer that a process's output goroutine may write
// while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ExitCode is the exit code behind err from exec.Cmd.Run or Wait: 0 for
// nil, the code of an *exec.ExitError, and a test failure for anything
// else (the process never ran).
func ExitCode(t testing.TB, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}
