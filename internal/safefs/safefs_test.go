package safefs

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostile is a directory as a container would leave it: a symlink to a
// host file, a FIFO, a link to /dev/zero, a socket, a subdirectory, and
// one honest file. The victim lies outside it.
func hostile(t *testing.T) (*Dir, string) {
	t.Helper()
	top := shortTemp(t)
	victim := filepath.Join(top, "victim")
	if err := os.WriteFile(victim, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(top, "d")
	os.Mkdir(dir, 0o755)
	must(t, os.Symlink(victim, filepath.Join(dir, "link")))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	must(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero")))
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "ok"), []byte("fine"), 0o644))
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	must(t, err)
	t.Cleanup(func() { l.Close() })
	must(t, os.Symlink(filepath.Join(dir, "sock"), filepath.Join(dir, "socklink")))
	d, err := OpenDir(dir)
	must(t, err)
	t.Cleanup(func() { d.Close() })
	return d, victim
}

// shortTemp: socket paths must fit in 108 bytes.
func shortTemp(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sfs")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestReadFileRefusesWhatIsNotAPlainFile(t *testing.T) {
	d, _ := hostile(t)
	for name, want := range map[string]error{
		"link": ErrSymlink, "zero": ErrSymlink, "fifo": ErrNotRegular,
		"sub": ErrNotRegular, "sock": ErrNotRegular, "../d/ok": ErrBadName,
	} {
		done := make(chan error, 1)
		go func() { _, err := d.ReadFile(name, 1024); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, want) {
				t.Errorf("ReadFile(%s) = %v, want %v", name, err, want)
			}
			if err != nil && name != "../d/ok" && !strings.Contains(err.Error(), name) {
				t.Errorf("ReadFile(%s): error %q does not name the file", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("ReadFile(%s) hangs", name)
		}
	}
	b, err := d.ReadFile("ok", 1024)
	if err != nil || string(b) != "fine" {
		t.Fatalf("ReadFile(ok) = %q, %v", b, err)
	}
}

// A file bigger than the cap is refused after reading cap+1 bytes.
func TestReadFileSizeCap(t *testing.T) {
	d, _ := hostile(t)
	if _, err := d.ReadFile("ok", 3); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("4 bytes with cap 3: %v", err)
	}
	if b, err := d.ReadFile("ok", 4); err != nil || len(b) != 4 {
		t.Fatalf("4 bytes with cap 4: %q, %v", b, err)
	}
}

// /proc/self/... files report size 0 and never end in the sense of a
// size check: the cap is on bytes read, not on fstat.
func TestReadFileUnboundedSource(t *testing.T) {
	d, err := OpenDir("/proc/self/task")
	must(t, err)
	defer d.Close()
	// A directory entry is not a file; then a real unbounded-looking file.
	if _, err := d.ReadFile("x", 10); err == nil {
		t.Fatal("missing file read")
	}
	pd, err := OpenDir("/proc/" + strconv.Itoa(os.Getpid()))
	must(t, err)
	defer pd.Close()
	if _, err := pd.ReadFile("environ", 1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("environ with cap 1: %v", err)
	}
}

func TestOpenDirRefusesSymlink(t *testing.T) {
	top := shortTemp(t)
	must(t, os.Symlink("/etc", filepath.Join(top, "l")))
	if _, err := OpenDir(filepath.Join(top, "l")); !errors.Is(err, ErrSymlink) {
		t.Fatalf("OpenDir(symlink) = %v", err)
	}
}

// WriteFileAtomic never writes through a link planted under the final or
// the temporary name.
func TestWriteFileAtomicLeavesVictimAlone(t *testing.T) {
	d, victim := hostile(t)
	tmp := ".link.tmp" + strconv.Itoa(os.Getpid())
	must(t, os.Symlink(victim, filepath.Join(d.Path(), tmp)))
	must(t, d.WriteFileAtomic("link", []byte("report\n"), 0o600))
	b, _ := os.ReadFile(victim)
	if string(b) != "secret\n" {
		t.Fatalf("victim changed: %q", b)
	}
	fi, err := os.Lstat(filepath.Join(d.Path(), "link"))
	must(t, err)
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("link is now %v, want a 0600 regular file", fi.Mode())
	}
}

func TestDialUnixChecksType(t *testing.T) {
	d, _ := hostile(t)
	for name, want := range map[string]error{"socklink": ErrSymlink, "ok": ErrNotSocket, "fifo": ErrNotSocket} {
		if f, err := d.DialUnix(name); !errors.Is(err, want) {
			if f != nil {
				f.Close()
			}
			t.Errorf("DialUnix(%s) = %v, want %v", name, err, want)
		}
	}
	f, err := d.DialUnix("sock")
	must(t, err)
	defer f.Close()
	pid, err := PeerPID(int(f.Fd()))
	if err != nil || pid != os.Getpid() {
		t.Fatalf("PeerPID = %d, %v; want %d", pid, err, os.Getpid())
	}
}

// A listener that never accepts, with a full backlog, makes the connect
// fail at once rather than wait.
func TestDialUnixFullBacklogRefuses(t *testing.T) {
	dir := shortTemp(t)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	must(t, err)
	defer unix.Close(fd)
	must(t, unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(dir, "s")}))
	must(t, unix.Listen(fd, 0))
	d, err := OpenDir(dir)
	must(t, err)
	defer d.Close()
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 64 && err == nil; i++ {
			var f *os.File
			if f, err = d.DialUnix("s"); err == nil {
				defer f.Close()
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("64 connects to a listener with backlog 0 all succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("DialUnix blocks on a full backlog")
	}
}

func TestMkdirOwnedRefusesLink(t *testing.T) {
	d, victim := hostile(t)
	must(t, os.Symlink(filepath.Dir(victim), filepath.Join(d.Path(), "dirlink")))
	before, _ := os.Stat(filepath.Dir(victim))
	if _, err := d.MkdirOwned("dirlink", Owner{UID: -1, GID: -1, Mode: 0o777}); !errors.Is(err, ErrSymlink) {
		t.Fatalf("MkdirOwned(link) = %v", err)
	}
	after, _ := os.Stat(filepath.Dir(victim))
	if before.Mode() != after.Mode() {
		t.Fatalf("link target's mode changed: %v -> %v", before.Mode(), after.Mode())
	}
	sub, err := d.MkdirOwned("new", Owner{UID: -1, GID: -1, Mode: 0o750})
	must(t, err)
	sub.Close()
	fi, _ := os.Stat(filepath.Join(d.Path(), "new"))
	if fi.Mode().Perm() != 0o750 {
		t.Fatalf("new dir mode %v", fi.Mode())
	}
}
