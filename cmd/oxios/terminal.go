package main

import (
	"io"

	"github.com/a7garden/oxios/internal/termesc"
)

// isTerminal: progress and waiting lines only for a person watching
// (a terminal answers the get-attributes ioctl; /dev/null does not).
func isTerminal(w io.Writer) bool { return termesc.IsTerminal(w) }

// printable escapes what a terminal would act on (ESC, CR, C1...) in text
// that comes from the container: probe details, waiting lines.
func printable(s string) string { return termesc.String(s) }
