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
}

// Open opens (creating, appending) the log file.
func Open(o Options) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o755); err != nil {
		return nil, fmt.Errorf("log dir for %s: %w", o.Path, err)
	}
	w := &Writer{o: o}
	return w, w.open()
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

// Write appends p, rotating first when p would push the file past MaxSize.
// One call is one or more whole lines (Copy), so rotation never splits one.
func (w *Writer) Write(p []byte) (int, error) {
	if w.f == nil { // an earlier reopen failed (say, the disk was full)
		if err := w.open(); err != nil {
			return 0, err
		}
	}
	if w.o.MaxSize > 0 && w.size > 0 && w.size+int64(len(p)) > w.o.MaxSize {
		if err := w.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
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
