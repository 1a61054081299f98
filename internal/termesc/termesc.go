// Package termesc makes untrusted text safe to show on a terminal, as
// journalctl does for a service's log: control characters that a
// terminal would act on (ESC starting CSI and OSC sequences, CR rewriting
// the line, BEL, backspace) are written as visible escapes such as \x1b
// and \r; newline and tab stay. The daemon's log is written by whatever
// runs in the container, and a terminal that interprets it can be made
// to hide lines, retitle the window or, on some terminals, write files.
package termesc

import (
	"io"
	"strings"
	"unicode/utf8"
)

const hex = "0123456789abcdef"

// String returns s with every unsafe character escaped.
func String(s string) string {
	if safe(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for len(s) > 0 {
		n := appendRune(&b, s)
		s = s[n:]
	}
	return b.String()
}

// safe reports whether s needs no escaping (the common case: plain text).
func safe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return allRunesSafe(s[i:])
		}
		if c < ' ' && c != '\n' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func allRunesSafe(s string) bool {
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n <= 1 || !printable(r) {
			return false
		}
		s = s[n:]
	}
	return true
}

// printable: everything but C0 (except \n, \t), DEL, C1 (U+0080-U+009F,
// which 8-bit terminals read as CSI, OSC...) and the bidirectional
// overrides and isolates that reorder what is shown (U+202A-U+202E,
// U+2066-U+2069).
func printable(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return true
	case r < ' ' || r == 0x7f || r >= 0x80 && r <= 0x9f:
		return false
	case r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069:
		return false
	}
	return true
}

// appendRune writes the first rune of s (escaped if need be) to b and
// returns how many bytes of s it used.
func appendRune(b *strings.Builder, s string) int {
	r, n := utf8.DecodeRuneInString(s)
	switch {
	case r == utf8.RuneError && n <= 1:
		writeByte(b, s[0]) // not UTF-8: the byte itself, escaped
		return 1
	case printable(r):
		b.WriteString(s[:n])
	case r == '\r':
		b.WriteString(`\r`)
	case r < 0x80:
		writeByte(b, byte(r))
	default:
		b.WriteString(`\u`)
		for shift := 12; shift >= 0; shift -= 4 {
			b.WriteByte(hex[r>>shift&0xf])
		}
	}
	return n
}

func writeByte(b *strings.Builder, c byte) {
	b.WriteString(`\x`)
	b.WriteByte(hex[c>>4])
	b.WriteByte(hex[c&0xf])
}

// Writer escapes what is written through it. A UTF-8 sequence split
// across two writes is held until it is complete; Flush writes what is
// still held (escaped: at the end, it is not a whole character).
type Writer struct {
	w       io.Writer
	pending []byte
}

// NewWriter returns a Writer that escapes into w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write escapes p and writes it; it reports len(p) on success.
func (e *Writer) Write(p []byte) (int, error) {
	buf := append(e.pending, p...)
	keep := incompleteTail(buf)
	s := string(buf[:len(buf)-keep])
	e.pending = append(e.pending[:0], buf[len(buf)-keep:]...)
	if _, err := io.WriteString(e.w, String(s)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes the bytes held back as the start of an unfinished
// UTF-8 sequence.
func (e *Writer) Flush() error {
	if len(e.pending) == 0 {
		return nil
	}
	var b strings.Builder
	for _, c := range e.pending {
		writeByte(&b, c)
	}
	e.pending = e.pending[:0]
	_, err := io.WriteString(e.w, b.String())
	return err
}

// incompleteTail is how many bytes at the end of b start a UTF-8
// sequence that more bytes could still complete.
func incompleteTail(b []byte) int {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return 0
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return i
			}
			return 0
		}
	}
	return 0
}
