package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal: progress and waiting lines only for a person watching. A
// terminal answers the get-attributes ioctl; /dev/null, also a character
// device, does not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlGetTermios)
	return err == nil
}
