package stalelock

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

func TestAcquireWritesHolderAndRefusesSecond(t *testing.T) {
	p := filepath.Join(t.TempDir(), "oxios-init.lock")
	l, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), "pid="+strconv.Itoa(os.Getpid())) {
		t.Errorf("lock content %q does not name this process", b)
	}
	// flock belongs to the open file description: a second Acquire in
	// this process is a second instance.
	_, err = Acquire(p)
	var held *HeldError
	if !errors.As(err, &held) || !strings.Contains(err.Error(), "pid="+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second Acquire: %v, want a HeldError naming pid %d", err, os.Getpid())
	}
	l.Close()
	l2, err := Acquire(p)
	if err != nil {
		t.Fatalf("Acquire after Close: %v", err)
	}
	l2.Close()
	if _, err := os.Stat(p); err != nil {
		t.Errorf("the lock file must stay: %v", err)
	}
}

// A stale holder line, longer or shorter than this one, is replaced by
// exactly this process's line: no tail of the old one is left.
func TestAcquireReplacesOldLine(t *testing.T) {
	for _, old := range []string{"pid=4242 host=" + strings.Repeat("h", 200) + " since=then\n", "x\n"} {
		p := filepath.Join(t.TempDir(), "oxios-init.lock")
		if err := os.WriteFile(p, []byte(old), 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Acquire(p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		l.Close()
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "pid="+strconv.Itoa(os.Getpid())+" ") || !strings.HasSuffix(string(b), "Z\n") {
			t.Errorf("after a %d-byte old line the lock holds %q, want only this process's line", len(old), b)
		}
	}
}

// A live instance in another process (flock(1) holding the lock).
func TestAcquireHeldByOtherProcess(t *testing.T) {
	flock := testenv.RequireTool(t, "flock")
	p := filepath.Join(t.TempDir(), "lk")
	os.WriteFile(p, []byte("pid=4242 host=other since=then\n"), 0o644)
	cmd := exec.Command(flock, "-x", p, "sh", "-c", "echo locked; read x")
	out, _ := cmd.StdoutPipe()
	in, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	buf := make([]byte, 7)
	out.Read(buf)
	_, err := Acquire(p)
	if err == nil || !strings.Contains(err.Error(), "pid=4242 host=other") {
		t.Fatalf("Acquire while flock(1) holds it: %v, want refusal naming the holder", err)
	}
}

func TestAcquireRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("precious"), 0o644)
	link := filepath.Join(dir, "lk")
	os.Symlink(target, link)
	if _, err := Acquire(link); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("Acquire(symlink) = %v, want a refusal", err)
	}
	// A symlinked directory in the path is refused too.
	os.Mkdir(filepath.Join(dir, "real"), 0o755)
	os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "via"))
	if _, err := Acquire(filepath.Join(dir, "via", "lk")); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("Acquire through a symlinked directory = %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Errorf("symlink target changed: %q", b)
	}
}

func TestCleanRules(t *testing.T) {
	dir := t.TempDir()
	path := func(n string) string { return filepath.Join(dir, n) }

	os.WriteFile(path("daemon.pid"), []byte("1\n"), 0o644) // stale PID file (PID 1 is alive: irrelevant)
	os.WriteFile(path("stale.lock"), []byte("2\n"), 0o644)

	// A lock file someone holds: kept.
	os.WriteFile(path("held.lock"), nil, 0o644)
	hf, _ := os.Open(path("held.lock"))
	defer hf.Close()
	if err := unix.Flock(int(hf.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	// A socket nobody listens on (refused) and a live one.
	dead, err := net.Listen("unix", path("dead.sock"))
	if err != nil {
		t.Fatal(err)
	}
	dead.(*net.UnixListener).SetUnlinkOnClose(false)
	dead.Close()
	live, err := net.Listen("unix", path("live.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	// Symlinks: to a file, and a directory symlink in the path.
	os.WriteFile(path("target"), []byte("precious"), 0o644)
	os.Symlink(path("target"), path("link.pid"))
	os.Mkdir(path("sub"), 0o755)
	os.WriteFile(path("sub/x.pid"), []byte("3"), 0o644)
	os.Symlink(path("sub"), path("viasub"))

	os.Mkdir(path("adir"), 0o755)

	want := map[string]Action{
		"daemon.pid":   Removed,
		"stale.lock":   Removed,
		"held.lock":    KeptLive,
		"dead.sock":    Removed,
		"live.sock":    KeptLive,
		"link.pid":     Refused,
		"viasub/x.pid": Refused,
		"adir":         Refused,
		"missing.pid":  Missing,
	}
	var paths []string
	for n := range want {
		paths = append(paths, path(n))
	}
	for _, r := range Clean(paths) {
		n, _ := filepath.Rel(dir, r.Path)
		if r.Action != want[n] {
			t.Errorf("%s: %s (%s), want %s", n, r.Action, r.Detail, want[n])
		}
	}
	exists := func(n string) bool { _, err := os.Lstat(path(n)); return err == nil }
	for n, a := range want {
		if a == Removed && exists(n) {
			t.Errorf("%s still exists", n)
		}
		if (a == KeptLive || a == Refused) && n != "viasub/x.pid" && !exists(n) {
			t.Errorf("%s was removed", n)
		}
	}
	if !exists("target") || !exists("sub/x.pid") {
		t.Error("a symlink's target was removed")
	}
	// The live socket still works.
	c, err := net.Dial("unix", path("live.sock"))
	if err != nil {
		t.Errorf("live socket broken: %v", err)
	} else {
		c.Close()
	}
}

func TestCleanDatagramSocket(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dgram.sock")
	fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: p}); err != nil {
		t.Fatal(err)
	}
	r := Clean([]string{p})[0]
	if r.Action != KeptLive {
		t.Errorf("bound datagram socket: %s (%s), want kept", r.Action, r.Detail)
	}
	unix.Close(fd)
	r = Clean([]string{p})[0]
	if r.Action != Removed {
		t.Errorf("closed datagram socket: %s (%s), want removed", r.Action, r.Detail)
	}
}

var _ = syscall.Getpid
