//go:build linux

package upgrade

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

// A state file that is truncated, empty, or names a step or version
// recover cannot act on is an error naming the file, from every entry
// point, and the file is left as it was: it may be the only account of
// an interrupted upgrade.
func TestBadStateFileRefused(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":    `{"current": {"ref": "x", "dig`,
		"empty":        ``,
		"unknown step": `{"in_progress": {"step": "teleporting", "from": {"digest": "sha256:aa"}}}`,
		"no from":      `{"in_progress": {"step": "verifying"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := storeConfig(t)
			s := newStore(c)
			if err := s.open(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.path(), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			o := Options{Config: c} // no runtime: nothing may get as far as containerd
			calls := map[string]func() error{
				"history":  func() error { _, err := History(c, 0); return err },
				"upgrade":  func() error { _, err := Upgrade(context.Background(), o); return err },
				"rollback": func() error { _, err := Rollback(context.Background(), o); return err },
				"recover":  func() error { _, err := Recover(context.Background(), o); return err },
			}
			for call, fn := range calls {
				if err := fn(); !errors.Is(err, ErrBadState) || !strings.Contains(err.Error(), s.path()) {
					t.Errorf("%s: %v, want ErrBadState naming %s", call, err, s.path())
				}
			}
			if b, err := os.ReadFile(s.path()); err != nil || string(b) != content {
				t.Fatalf("the state file changed: %q %v", b, err)
			}
		})
	}
}

// A second upgrade while one holds the lock is refused with ErrBusy
// naming the holder's PID.
func TestBusyNamesHolder(t *testing.T) {
	c := storeConfig(t)
	unlock, err := newStore(c).lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = Upgrade(context.Background(), Options{Config: c})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "PID "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("upgrade under a held lock: %v, want ErrBusy naming PID %d", err, os.Getpid())
	}
}

// What an upgrade is asked for is refused before any lock or record
// when it cannot be had: a REF that does not parse or is not in full, a
// REF with an archive, an archive that is missing, a directory, or not a
// tar file. A plain and a gzipped tar pass (the import judges them).
func TestCheckSource(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("not an archive\n"), 0o644)
	plain, gz := filepath.Join(dir, "img.tar"), filepath.Join(dir, "img.tar.gz")
	writeTar(t, plain, false)
	writeTar(t, gz, true)
	for _, tc := range []struct {
		o    Options
		want error
	}{
		{Options{Ref: "Registry.example/UPPER:x"}, ErrBadRef},
		{Options{Ref: "registry.example/oxios:bad tag"}, ErrBadRef},
		{Options{Ref: "alpine:3"}, ErrBadRef},
		{Options{Ref: "registry.example/oxios:1", Archive: plain}, ErrBadRef},
		{Options{Archive: filepath.Join(dir, "missing.tar")}, ErrBadArchive},
		{Options{Archive: dir}, ErrBadArchive},
		{Options{Archive: text}, ErrBadArchive},
		{Options{Ref: "127.0.0.1:5000/oxios/demo:v2"}, nil},
		{Options{Ref: "docker.io/library/alpine@sha256:" + strings.Repeat("a", 64)}, nil},
		{Options{Archive: plain}, nil},
		{Options{Archive: gz}, nil},
		{Options{}, nil},
	} {
		err := CheckSource(tc.o)
		if !errors.Is(err, tc.want) || err == nil && tc.want != nil {
			t.Errorf("%+v: %v, want %v", tc.o, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), tc.o.Ref+tc.o.Archive) && !strings.Contains(err.Error(), tc.o.Archive) {
			t.Errorf("%+v: %v does not name what was given", tc.o, err)
		}
	}
}

func writeTar(t *testing.T, path string, gz bool) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "index.json", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("{}"))
	tw.Close()
	b := buf.Bytes()
	if gz {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(b)
		zw.Close()
		b = z.Bytes()
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The data copy is put back whatever the data dir is: a plain directory
// on the state dir's filesystem (moved aside, kept as ID.data-failed), a
// tmpfs, or a bind mount (replaced in place). A second restore, as a
// recovery after an interrupted rollback runs it, leaves the same data.
func TestRestoreDataMountPoints(t *testing.T) {
	testenv.RequireRoot(t)
	for _, kind := range []string{"dir", "tmpfs", "bind"} {
		t.Run(kind, func(t *testing.T) {
			u, data := snapshotUpgrader(t, kind)
			writeV1(t, u, data)
			// The new daemon migrates: changes, adds, removes.
			write(t, filepath.Join(data, "precious.db"), "v2 rows")
			write(t, filepath.Join(data, "v2.schema"), "new")
			os.RemoveAll(filepath.Join(data, "sub"))
			for i := 0; i < 2; i++ {
				if err := u.restoreData(); err != nil {
					t.Fatalf("restore %d: %v", i+1, err)
				}
				checkV1(t, data)
			}
			_, err := os.Stat(filepath.Join(u.s.failedPath(), "v2.schema"))
			if kind == "dir" && err != nil {
				t.Fatalf("the failed daemon's data is not kept: %v", err)
			}
			if kind != "dir" && !isMount(t, data) {
				t.Fatalf("%s is no longer a mount point", data)
			}
		})
	}
}

// An interrupted restore between its two renames (no data dir, the copy
// complete) is finished by the next one.
func TestRestoreDataBetweenRenames(t *testing.T) {
	u, data := snapshotUpgrader(t, "dir")
	writeV1(t, u, data)
	write(t, filepath.Join(data, "precious.db"), "v2 rows")
	if err := os.Rename(data, u.s.failedPath()); err != nil {
		t.Fatal(err)
	}
	if err := u.restoreData(); err != nil {
		t.Fatal(err)
	}
	checkV1(t, data)
}

// snapshotUpgrader is an upgrader with a state dir and a data dir of
// kind: "dir", "tmpfs" or "bind" (a bind mount of another directory).
func snapshotUpgrader(t *testing.T, kind string) (*upgrader, string) {
	c := storeConfig(t)
	root := t.TempDir()
	data := filepath.Join(root, "data")
	if err := os.Mkdir(data, 0o750); err != nil {
		t.Fatal(err)
	}
	switch kind {
	case "tmpfs":
		mount(t, "tmpfs", data, "tmpfs", 0)
	case "bind":
		src := filepath.Join(root, "src")
		os.Mkdir(src, 0o750)
		mount(t, src, data, "", unix.MS_BIND)
	}
	c.Container.DataDir = data
	s := newStore(c)
	if err := s.open(); err != nil {
		t.Fatal(err)
	}
	return &upgrader{o: Options{Config: c}, s: s, st: &State{}, rec: &Record{}, out: testWriter{t}}, data
}

func mount(t *testing.T, src, dst, fstype string, flags uintptr) {
	if err := unix.Mount(src, dst, fstype, flags, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", src, dst, err)
	}
	t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
}

// isMount: dir is a mount point in this mount namespace.
func isMount(t *testing.T, dir string) bool {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

func write(t *testing.T, path, s string) {
	if err := os.WriteFile(path, []byte(s), 0o640); err != nil {
		t.Fatal(err)
	}
}

// writeV1 writes the old daemon's data (checkV1 checks it) and copies it
// as an upgrade does.
func writeV1(t *testing.T, u *upgrader, data string) {
	write(t, filepath.Join(data, "precious.db"), "v1 rows")
	os.Mkdir(filepath.Join(data, "sub"), 0o750)
	write(t, filepath.Join(data, "sub", "wal"), "v1 wal")
	if err := u.snapshot(); err != nil {
		t.Fatal(err)
	}
}

func checkV1(t *testing.T, data string) {
	t.Helper()
	for p, want := range map[string]string{"precious.db": "v1 rows", "sub/wal": "v1 wal"} {
		if b, err := os.ReadFile(filepath.Join(data, p)); err != nil || string(b) != want {
			t.Fatalf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "v2.schema")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the new daemon's file is still in the data dir: %v", err)
	}
}
