// Command writer is the daemon of the log benchmark (bench/logs): it
// writes -mib MiB of numbered lines of -line bytes to stdout, -write bytes
// per write() (the line size: one write per line, as a logger that does
// not buffer; larger: a buffered logger, whose writes end inside lines),
// then states on stdout (after the last line) how long the writes took, as seen from inside
// the container.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	mib := flag.Int("mib", 512, "MiB to write")
	lineLen := flag.Int("line", 100, "bytes per line, newline included (at least 20)")
	write := flag.Int("write", 64<<10, "bytes per write()")
	flag.Parse()
	if *lineLen < 20 || *write < 1 {
		fmt.Fprintln(os.Stderr, "writer: -line must be at least 20 and -write at least 1")
		os.Exit(2)
	}
	total := int64(*mib) << 20
	lines := total / int64(*lineLen)
	// "line NNNNNNNNNNNN xxx...\n": the number is counted up in place, so
	// that making lines costs the writer next to nothing.
	line := []byte("line 000000000000 " + strings.Repeat("x", *lineLen-19) + "\n")
	buf := make([]byte, 0, *write+*lineLen)
	t0 := time.Now()
	for i := int64(0); i < lines; i++ {
		buf = append(buf, line...)
		increment(line[5:17])
		for len(buf) >= *write {
			if _, err := os.Stdout.Write(buf[:*write]); err != nil {
				fmt.Fprintln(os.Stderr, "writer:", err)
				os.Exit(1)
			}
			buf = buf[:copy(buf, buf[*write:])]
		}
	}
	if _, err := os.Stdout.Write(buf); err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stdout, "writer: %d lines, %d bytes in %d ns\n", lines, lines*int64(*lineLen), time.Since(t0).Nanoseconds())
}

// increment adds one to the decimal number in digits.
func increment(digits []byte) {
	for i := len(digits) - 1; i >= 0; i-- {
		if digits[i] < '9' {
			digits[i]++
			return
		}
		digits[i] = '0'
	}
}
