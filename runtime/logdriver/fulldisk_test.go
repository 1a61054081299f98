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
// batch or a block: the file still holds whole records and blocks only,
// the marker says how many lines were lost, and the lines kept plus the
// lines counted as lost are all the lines written. A line per write makes
// records; eight (a burst) make blocks.
func TestLogFullDiskKeepsRecordsWhole(t *testing.T) {
	testenv.RequireRoot(t)
	for _, perWrite := range []int{1, 8} {
		t.Run(fmt.Sprintf("%d lines a write", perWrite), func(t *testing.T) { fullDisk(t, perWrite) })
	}
}

func fullDisk(t *testing.T, perWrite int) {
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
	send := func(lines int) {
		for i := 0; i < lines; i += perWrite {
			var b strings.Builder
			for j := 0; j < perWrite; j++ {
				fmt.Fprintf(&b, "line %04d %s\n", n, strings.Repeat("z", 700))
				n++
			}
			io.WriteString(pw, b.String())
		}
	}
	send(16)
	filler := filepath.Join(dir, "filler")
	if err := fill(filler); err != nil {
		t.Fatal(err)
	}
	send(40)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	send(16)
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	kept, dropped, after := 0, 0, 0
	rs, blocks := fileRecords(t, p) // fails on a block cut short
	for _, r := range rs {
		if m := reMarker.FindSubmatch(r.Msg); m != nil {
			dropped, _ = strconv.Atoi(string(m[1]))
			continue
		}
		if !regexp.MustCompile(`^line \d{4} z{700}$`).Match(r.Msg) {
			t.Errorf("a record cut short: %.60q", r.Msg)
		}
		kept++
		if dropped > 0 {
			after++
		}
	}
	if dropped == 0 || kept+dropped != n || after < 16 {
		t.Fatalf("%d lines kept (%d after the marker) and %d counted as dropped, of %d written", kept, after, dropped, n)
	}
	if perWrite > 1 && blocks == 0 {
		t.Fatalf("no blocks written")
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

// A block larger than max_size (a file of its own) cut short by a full
// disk: its rest goes to the same file once there is room again, not to
// the next one, so no file ends inside a block.
func TestLogFullDiskFinishesABlockInItsFile(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	p := filepath.Join(dir, "c.log")
	w, err := Open(Options{Path: p, MaxSize: 4096, MaxFiles: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var burst strings.Builder
	for i := 0; burst.Len() < 6000; i++ {
		fmt.Fprintf(&burst, "burst %03d %s\n", i, strings.Repeat("b", 80))
	}
	filler := filepath.Join(dir, "filler")
	if err := fill(filler); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filler)
	if err := os.Truncate(filler, st.Size()-4096); err != nil { // one page free: the block is cut
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan error)
	go func() { done <- Copy(w, nil, pr, nil) }()
	io.WriteString(pw, burst.String())
	pw.Write(nil) // returns at Copy's next read: the block is written (cut short) by then
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	io.WriteString(pw, "after\n")
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	files := []string{p}
	for i := 1; ; i++ {
		f := fmt.Sprintf("%s.%d", p, i)
		if _, err := os.Stat(f); err != nil {
			break
		}
		files = append([]string{f}, files...)
	}
	rs, blocks := fileRecords(t, files...) // fails on a file that ends inside a block
	var got strings.Builder
	for _, r := range rs {
		got.Write(append(r.Msg, '\n'))
	}
	if blocks != 1 || got.String() != burst.String()+"after\n" {
		t.Fatalf("%d blocks in %d files, read back %.80q", blocks, len(files), got.String())
	}
}
