//go:build linux

package logdriver

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

// On a real full disk (a small tmpfs), writes fail part way through a
// batch: the file still holds whole records only, the marker says how
// many lines were lost, and the lines kept plus the lines counted as lost
// are all the lines written.
func TestLogFullDiskKeepsRecordsWhole(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	p := filepath.Join(dir, "c.log")
	w, err := Open(Options{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pr, pw := io.Pipe()
	done := make(chan error)
	go func() { done <- Copy(w, nil, pr, nil) }()
	n := 0
	// An io.Pipe hands each Write to one Read, and Copy writes a read's
	// batch before it reads again: once a Write returns, the batch before
	// it is in the file (or lost).
	send := func(count int) {
		for i := 0; i < count; i++ {
			fmt.Fprintf(pw, "line %04d %s\n", n, strings.Repeat("z", 700))
			n++
		}
	}
	send(10)
	filler := filepath.Join(dir, "filler")
	if err := fill(filler); err != nil {
		t.Fatal(err)
	}
	send(40)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	send(5)
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	kept, dropped := 0, 0
	for _, r := range records(t, p) {
		if m := reMarker.FindSubmatch(r.Msg); m != nil {
			dropped, _ = strconv.Atoi(string(m[1]))
			continue
		}
		if !regexp.MustCompile(`^line \d{4} z{700}$`).Match(r.Msg) {
			t.Errorf("a record cut short: %.60q", r.Msg)
		}
		kept++
	}
	if dropped == 0 || kept+dropped != n {
		t.Fatalf("%d lines kept and %d counted as dropped, of %d written", kept, dropped, n)
	}
}

var reMarker = regexp.MustCompile(`^oxios: (\d+) log lines dropped \(.*no space left on device\)$`)

func fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1024)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}
