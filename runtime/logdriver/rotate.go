package logdriver

import (
	"fmt"
	"os"
	"path/filepath"
)

// Writer appends to Path and rotates it by size: PATH -> PATH.1 -> ... ->
// PATH.MaxFiles (dropped). It never truncates: a new run appends.
type Writer struct {
	o    Options
	f    *os.File
	size int64
	owed int // bytes of a record or block that a failed write cut short
}

// Open opens (creating, appending) the log file.
func Open(o Options) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o755); err != nil {
		return nil, fmt.Errorf("log dir for %s: %w", o.Path, err)
	}
	w := &Writer{o: o}
	return w, w.open()
}

// Check opens the log as the driver will, and closes it (with journald:
// checks that journald takes entries). The shim takes a
// driver that exits at once for a ready one (its ready pipe closes either
// way), so the daemon would start with no one reading its output: the
// host calls Check first, and a log that cannot be opened fails the start
// with the path named.
func (o Options) Check() error {
	if o.Driver == DriverJournald {
		return checkJournal(o.JournalSocket)
	}
	w, err := Open(o)
	if err != nil {
		return err
	}
	return w.Close()
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.o.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log %s: %w", w.o.Path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, st.Size()
	return nil
}

// Write appends p, one or more whole records (Copy). When p would push
// the file past MaxSize, the records that fit go to this file and the rest
// to the next: rotation never splits a record or a block, and a record or
// block larger than MaxSize gets a file of its own.
func (w *Writer) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		if w.f == nil { // an earlier reopen failed (say, the disk was full)
			if err := w.open(); err != nil {
				return done, err
			}
		}
		var chunk []byte
		if w.owed > 0 {
			// The rest of a record cut short (Copy writes it first):
			// into the file that holds its start, whatever the size.
			chunk = p[done : done+min(w.owed, len(p)-done)]
		} else if chunk = w.fit(p[done:]); len(chunk) == 0 {
			if err := w.rotate(); err != nil {
				return done, err
			}
			continue
		}
		n, err := w.f.Write(chunk)
		w.size += int64(n)
		done += n
		if w.owed > 0 {
			w.owed -= n
		} else if err != nil {
			w.owed = cutShort(chunk, n)
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// cutShort returns how many bytes of the record (or block) that holds
// p[n-1] did not make it, p being whole records of which n were written.
func cutShort(p []byte, n int) int {
	end := 0
	for end < n {
		end += recordLen(p[end:])
	}
	return end - n
}

// fit returns the records at the start of p that this file can take:
// all of p, the whole records that fit, or (in an empty file) the first
// record whatever its size. Empty means: rotate first.
func (w *Writer) fit(p []byte) []byte {
	room := w.o.MaxSize - w.size
	if w.o.MaxSize <= 0 || int64(len(p)) <= room {
		return p
	}
	end := 0
	for end < len(p) {
		l := recordLen(p[end:])
		if int64(end+l) > room {
			break
		}
		end += l
	}
	if end == 0 && w.size == 0 {
		end = recordLen(p)
	}
	return p[:end]
}

func (w *Writer) rotate() error {
	w.f.Close()
	w.f = nil
	if w.o.MaxFiles <= 0 {
		// No history kept: start a new file, but by rename and unlink,
		// never truncation, so a reader holding the old file keeps it.
		os.Remove(w.o.Path)
		return w.open()
	}
	for i := w.o.MaxFiles - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", w.o.Path, i), fmt.Sprintf("%s.%d", w.o.Path, i+1))
	}
	if err := os.Rename(w.o.Path, w.o.Path+".1"); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("rotate %s: %w", w.o.Path, err)
	}
	return w.open()
}

// Close closes the file.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	return w.f.Close()
}
