package task

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/a7garden/oxios/runtime/logdriver"
)

// TailLines returns the last n lines of path.
func TailLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return lastLines(f, n, 0)
}

// logMark is where the log stood when a start began: a failed start shows
// only what was written after it, not an earlier run's last words.
type logMark struct {
	ino  uint64
	size int64
}

// markLog notes the log's current end (the zero mark when it has none).
func markLog(path string) logMark {
	fi, err := os.Stat(path)
	if err != nil {
		return logMark{}
	}
	m := logMark{size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		m.ino = st.Ino
	}
	return m
}

// tailSince is TailLines limited to the lines written after m. A log that
// was rotated since (another inode, or shorter) is all new.
func tailSince(path string, m logMark, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	floor := int64(0)
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Ino == m.ino && fi.Size() >= m.size {
			floor = m.size
		}
	}
	return lastLines(f, n, floor)
}

// lastLines reads from the end in blocks, down to offset floor at most,
// so a large log costs only what is shown.
func lastLines(f *os.File, n int, floor int64) ([]string, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	const block = 64 << 10
	off := st.Size()
	var buf []byte
	for off > floor && strings.Count(string(buf), "\n") <= n {
		step := min(int64(block), off-floor)
		off -= step
		chunk := make([]byte, step)
		if _, err := f.ReadAt(chunk, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		buf = append(chunk, buf...)
	}
	if len(buf) == 0 {
		return nil, nil
	}
	lines := messages(strings.Split(strings.TrimSuffix(string(buf), "\n"), "\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// messages turns the log's records into the daemon's lines: the message
// alone, with a line's parts joined. A line not in the record format (an
// older log) is kept as it is.
func messages(records []string) []string {
	var out []string
	var pending [2][]byte // parts of a line, by stream
	for _, l := range records {
		r := logdriver.ParseRecord([]byte(l))
		i := 0
		if r.Stream == logdriver.Stderr {
			i = 1
		}
		if r.Partial {
			pending[i] = append(pending[i], r.Msg...)
			continue
		}
		out = append(out, string(pending[i])+string(r.Msg))
		pending[i] = nil
	}
	return out
}

// LogOptions select what Logs prints.
type LogOptions struct {
	Lines  int  // last N lines; <= 0 = the whole current file
	Follow bool // keep printing new lines, across rotation, until ctx ends
}

// WriteLogs writes the log at path to w. It needs no containerd: the log
// is a host file.
func WriteLogs(ctx context.Context, path string, w io.Writer, o LogOptions) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("log %s: %w", path, err)
	}
	defer func() { f.Close() }()
	if err := writeStart(f, w, o.Lines); err != nil {
		return err
	}
	if !o.Follow {
		return nil
	}
	return follow(ctx, path, f, w)
}

func writeStart(f *os.File, w io.Writer, n int) error {
	if n <= 0 {
		_, err := io.Copy(w, f)
		return err
	}
	lines, err := lastLines(f, n, 0)
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	_, err = f.Seek(0, io.SeekEnd)
	return err
}

// follow copies what is appended and reopens the path when the driver
// rotates it (the open file was renamed to .1: the inode changed). It
// wakes on inotify events for the log directory, not on a timer.
func follow(ctx context.Context, path string, f *os.File, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := dirEvents(ctx, filepath.Dir(path))
	if err != nil {
		return err
	}
	r := bufio.NewReader(f)
	for {
		if _, err := io.Copy(w, r); err != nil {
			return err
		}
		if rotated(path, f) {
			if nf, err := os.Open(path); err == nil {
				io.Copy(w, r) // the rest of the old file
				f.Close()
				f = nf
				r.Reset(f)
				continue
			}
		}
		if _, ok := <-events; !ok {
			f.Close()
			return nil
		}
	}
}

func rotated(path string, f *os.File) bool {
	a, err1 := os.Stat(path)
	b, err2 := f.Stat()
	return err1 == nil && err2 == nil && !os.SameFile(a, b)
}
