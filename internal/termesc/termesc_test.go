package termesc

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"plain text\n":                  "plain text\n",
		"tab\there":                     "tab\there",
		"\x1b]0;pwned\x07title":         `\x1b]0;pwned\x07title`,
		"\x1b[2J\x1b[1;1Hclear":         `\x1b[2J\x1b[1;1Hclear`,
		"progress 10%\rprogress 20%":    `progress 10%\rprogress 20%`,
		"nul\x00 del\x7f bs\b":          `nul\x00 del\x7f bs\x08`,
		"c1 csi \u009b31m":              `c1 csi \u009b31m`,
		"raw 8-bit csi \x9b31m":         `raw 8-bit csi \x9b31m`,
		"bidi \u202eevil\u2066":         `bidi \u202eevil\u2066`,
		"ünïcödé ✓ 日本":                  "ünïcödé ✓ 日本",
		"broken \xe2\x82 utf8":          `broken \xe2\x82 utf8`,
		`a literal \x1b stays as it is`: `a literal \x1b stays as it is`,
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

// A character split across writes comes out whole; one cut off at the
// end comes out as escaped bytes on Flush.
func TestWriterSplitRune(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	for _, chunk := range []string{"a\xe2", "\x9c", "\x93b\x1b", "[0m\xe6\x97"} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	if got, want := b.String(), `a✓b\x1b[0m`; got != want {
		t.Errorf("before Flush: %q, want %q", got, want)
	}
	w.Flush()
	if got, want := b.String(), `a✓b\x1b[0m\xe6\x97`; got != want {
		t.Errorf("after Flush: %q, want %q", got, want)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) || IsTerminal(&bytes.Buffer{}) {
		t.Error("a file or a buffer taken for a terminal")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !IsTerminal(tty) {
			t.Error("/dev/tty not taken for a terminal")
		}
	}
}

// FuzzEscape: what String returns is UTF-8 with no character a terminal
// acts on; plain text is left alone; and a Writer fed the same bytes in
// two pieces writes exactly String's result.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "plain\n", "\x1b]52;c;aGk=\x07", "\r\x1b[K", "\xe2\x9c", "\u009b\u202e", "\xff\xfe", "✓"} {
		f.Add(s, 1)
	}
	f.Fuzz(func(t *testing.T, s string, cut int) {
		out := String(s)
		if !utf8.ValidString(out) {
			t.Fatalf("String(%q) = %q: not UTF-8", s, out)
		}
		for _, r := range out {
			if !printable(r) {
				t.Fatalf("String(%q) = %q: keeps %U", s, out, r)
			}
		}
		if allRunesSafe(s) && out != s {
			t.Fatalf("String(%q) = %q: changed safe text", s, out)
		}
		if !strings.ContainsAny(s, "\x1b\r\x07") && strings.Count(out, `\`) < strings.Count(s, `\`) {
			t.Fatalf("String(%q) = %q: lost a backslash", s, out)
		}
		if cut < 0 {
			cut = -cut
		}
		if len(s) > 0 {
			cut %= len(s) + 1
		} else {
			cut = 0
		}
		var b bytes.Buffer
		w := NewWriter(&b)
		w.Write([]byte(s[:cut]))
		w.Write([]byte(s[cut:]))
		w.Flush()
		if b.String() != out {
			t.Fatalf("Writer(%q | %q) = %q, String = %q", s[:cut], s[cut:], b.String(), out)
		}
	})
}
