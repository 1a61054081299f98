// Package logdriver owns the container's log file: one append-only file per
// container, rotated by size, never truncated, its lines kept whole as
// records of the CRI log format, or a burst's as one block (format.go);
// or, as the other driver, the
// systemd journal. containerd's shim runs it as a logging binary
// (cio.BinaryIO): the container's stdout and stderr arrive on fds 3 and 4,
// and closing fd 5 tells the shim it may start the task.
//
// A plain file:// log URI would be opened by the shim with O_APPEND (so no
// truncation), but the shim holds that descriptor for the task's whole life,
// so the file could never rotate. A logging binary owns the descriptor and
// can rename and reopen it.
package logdriver

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"github.com/containerd/containerd/v2/core/runtime/v2/logging"

	"github.com/a7garden/oxios/internal/safefs"
)

// Mode is the hidden argument that makes the oxios binary a log driver.
// The shim passes the BinaryIO args as unordered key/value pairs, so the
// driver is recognized by this key anywhere in the argument list.
const Mode = "oxios-log-driver"

// Options is what the driver needs; Args turns it into BinaryIO args.
type Options struct {
	Driver string // DriverFile ("" too) or DriverJournald
	// JournalSocket is journald's socket ("" = JournalSocket): another
	// journal namespace's, or (in tests) a journald elsewhere.
	JournalSocket string
	Path          string // the log file
	MaxSize       int64  // rotate when the file would exceed this; 0 = never
	MaxFiles      int    // keep PATH.1 .. PATH.N
	// Report is a file (on another filesystem than Path: the host-private
	// run dir) where the driver states a write error while it lasts;
	// status shows it. The shim gives the driver no stderr (/dev/null),
	// so this is the only way out for the error.
	Report string
}

// Args encodes o for cio.BinaryIO.
func (o Options) Args() map[string]string {
	return map[string]string{
		Mode:        "1",
		"driver":    o.Driver,
		"journal":   o.JournalSocket,
		"file":      o.Path,
		"max-size":  strconv.FormatInt(o.MaxSize, 10),
		"max-files": strconv.Itoa(o.MaxFiles),
		"report":    o.Report,
	}
}

// IsInvocation reports whether args (os.Args[1:]) are a driver invocation.
func IsInvocation(args []string) bool {
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == Mode {
			return true
		}
	}
	return false
}

// Parse decodes the key/value pairs the shim passes.
func Parse(args []string) (Options, error) {
	var o Options
	for i := 0; i+1 < len(args); i += 2 {
		k, v := args[i], args[i+1]
		var err error
		switch k {
		case "driver":
			o.Driver = v
		case "journal":
			o.JournalSocket = v
		case "file":
			o.Path = v
		case "max-size":
			o.MaxSize, err = strconv.ParseInt(v, 10, 64)
		case "max-files":
			o.MaxFiles, err = strconv.Atoi(v)
		case "report":
			o.Report = v
		}
		if err != nil {
			return o, fmt.Errorf("log driver argument %s=%q: %w", k, v, err)
		}
	}
	switch o.Driver {
	case "", DriverFile:
		if o.Path == "" {
			return o, fmt.Errorf("log driver: no file argument")
		}
	case DriverJournald:
	default:
		return o, fmt.Errorf("log driver argument driver=%q: not %s or %s", o.Driver, DriverFile, DriverJournald)
	}
	return o, nil
}

// Main is the driver. It opens the log first and returns the error, naming
// the path, when it cannot (the shim takes that exit for ready, so the
// host checks the same first: Options.Check); then containerd's own
// logging.Run hands it the streams
// (fds 3 and 4) and the ready pipe (fd 5), and turns a SIGTERM into the end
// of the context instead of a death that would drop buffered lines. Main
// returns only that first error: Run exits the process.
func Main(args []string) error {
	o, err := Parse(args)
	if err != nil {
		return err
	}
	var w io.WriteCloser
	journal := -1
	if o.Driver == DriverJournald {
		journal, err = dialJournal(o.JournalSocket)
	} else {
		w, err = Open(o)
	}
	if err != nil {
		return err
	}
	logging.Run(func(_ context.Context, c *logging.Config, ready func() error) error {
		if journal >= 0 { // its fields are known here
			w = newJournalWriter(journal, o.JournalSocket, c.ID, c.Namespace)
		}
		defer w.Close()
		if err := ready(); err != nil {
			return err
		}
		// The streams end when the task's last writer is gone: Copy
		// drains them whole, whatever the context says.
		return Copy(w, reporter{o.Report}, c.Stdout, c.Stderr)
	})
	return nil
}

// reporter states the current write error in the report file while it
// lasts (status shows it), and removes the file when writing works again.
// The driver runs as root: the file is written relative to its directory
// (the host-private run dir) with no link followed, so even a directory
// someone else could write would not turn it against another file.
type reporter struct{ path string }

func (r reporter) Write(p []byte) (int, error) {
	if r.path == "" {
		return len(p), nil
	}
	d, err := safefs.OpenDir(filepath.Dir(r.path))
	if err != nil {
		return 0, err
	}
	defer d.Close()
	if err := d.WriteFileAtomic(filepath.Base(r.path), p, 0o644); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (r reporter) recovered() {
	if r.path == "" {
		return
	}
	if d, err := safefs.OpenDir(filepath.Dir(r.path)); err == nil {
		d.Remove(filepath.Base(r.path))
		d.Close()
	}
}
