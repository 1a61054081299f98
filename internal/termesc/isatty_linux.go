package termesc

import (
	"io"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether w is a terminal: a file whose descriptor
// answers TCGETS, as isatty(3) checks.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
