// Command escapes is a hostile daemon for the gauntlet: it writes terminal
// control sequences to its log (a window title, a screen clear, a carriage
// return that hides what came before, an 8-bit CSI) and exits 3, so that
// `oxios start` fails and prints the log tail.
package main

import "os"

const hostile = "escapes: \x1b]0;pwned\x07 \x1b[2J\x1b[Hcleared \rhidden \x9b31m c1\n"

func main() {
	os.Stdout.WriteString(hostile)
	os.Stderr.WriteString(hostile)
	os.Exit(3)
}
