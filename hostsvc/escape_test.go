package hostsvc

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestQuoteExecArg(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"/usr/local/bin/oxios", "/usr/local/bin/oxios"},
		{"", `""`},
		{";", `";"`},
		{"a;b", "a;b"},
		{"100%", "100%%"},
		{"%n", "%%n"},
		{"$HOME", "$$HOME"},
		{"${X}", "$${X}"},
		{"a b", `"a b"`},
		{"tab\there", `"tab\there"`},
		{"new\nline", `"new\nline"`},
		{`say "hi"`, `"say \"hi\""`},
		{"it's", `"it's"`},
		{`back\slash`, `"back\\slash"`},
		{"é ü 日本", `"é ü 日本"`},
		{"café", "café"},
		{"\x01\x7f", `"\x01\x7f"`},
		{"bad\xffutf8", `"bad\xffutf8"`},
		{"nbsp\u00a0x", `"nbsp\u00a0x"`},
		{"% $ \\", `"%% $$ \\"`},
	} {
		got, err := QuoteExecArg(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("QuoteExecArg(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := QuoteExecArg("a\x00b"); !errors.Is(err, ErrNUL) {
		t.Errorf("NUL: err = %v, want ErrNUL", err)
	}
}

// hostileArgs are arguments a config path or binary path may hold.
var hostileArgs = []string{
	"", " ", ";", "\\;", "a b", "  lead", "trail  ", "%", "%%", "%n%i", "$", "$$", "$HOME", "${HOME}", "$1",
	`"`, `'`, `\`, `\\`, `\"`, `"'"`, "\t\n\r\v\f\a\b", "é", "日本語", "😀", "\u00a0", "\u2028", "\x7f",
	"\xff\xfe", "\xc3", "line1\nExecStart=/bin/evil", "#comment", "[Service]", "a\\", "-", "@", "!", "+", ":",
}

func TestSplitExecLineRoundTrip(t *testing.T) {
	for _, a := range hostileArgs {
		argv := []string{"/usr/bin/oxios", a, "x" + a + "y"}
		line, err := JoinExecLine(argv)
		if err != nil {
			t.Fatalf("JoinExecLine(%q): %v", argv, err)
		}
		if strings.ContainsAny(line, "\n\r") {
			t.Errorf("line for %q holds a raw line break: %q", a, line)
		}
		got, err := SplitExecLine(line)
		if err != nil || !slices.Equal(got, argv) {
			t.Errorf("round trip of %q via %q = %q, %v", argv, line, got, err)
		}
	}
}

func TestSplitExecLineSystemdSemantics(t *testing.T) {
	// Readings that come from systemd.syntax(7) and systemd.service(5), not
	// from our quoting: the parser must agree with systemd on input we did
	// not write.
	ok := []struct {
		line string
		want []string
	}{
		{`/bin/a 'single quoted' "double"`, []string{"/bin/a", "single quoted", "double"}},
		{`/bin/a x"y z"w`, []string{"/bin/a", "xy zw"}},
		{`/bin/a \x41\101\u00e9\U0001F600\s`, []string{"/bin/a", "AAé😀 "}},
		{`/bin/a $ $$ a$-b`, []string{"/bin/a", "$", "$", "a$-b"}},
		{"/bin/a \t  b  ", []string{"/bin/a", "b"}},
		{`/bin/a \;`, []string{"/bin/a", ";"}},
		{`/bin/a ";"`, []string{"/bin/a", ";"}},
		{`/bin/a ""`, []string{"/bin/a", ""}},
		{`/bin/a %%`, []string{"/bin/a", "%"}},
	}
	for _, tc := range ok {
		got, err := SplitExecLine(tc.line)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("SplitExecLine(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	for _, bad := range []string{
		"", "   ", `/bin/a "unterminated`, `/bin/a \`, `/bin/a \q`, `/bin/a \x00`, `/bin/a \xg1`,
		`/bin/a \000`, `/bin/a \u0000`, `/bin/a \ud800`, `/bin/a \U00110000`, `/bin/a %n`, `/bin/a %`,
		`/bin/a $HOME`, `/bin/a ${X}`, `/bin/a ; /bin/b`, `-/bin/a`, `@/bin/a x`, `bin/a`, `/bin/../a`,
		`/bin//a`, `"/bin/a\"b"`, `/bin/$$x`,
	} {
		if got, err := SplitExecLine(bad); err == nil {
			t.Errorf("SplitExecLine(%q) = %q, want an error", bad, got)
		}
	}
}

// FuzzRenderExecStart renders whole units for arbitrary binary paths,
// config paths and arguments, and reads ExecStart= and ExecStopPost= back
// with SplitExecLine: the argv systemd would run must be exactly the one
// rendered, and the unit must keep its shape (no injected line).
func FuzzRenderExecStart(f *testing.F) {
	for _, a := range hostileArgs {
		f.Add("/opt/x "+a+"/oxios", "/etc/"+a+".toml", a)
	}
	f.Fuzz(func(t *testing.T, bin, cfg, arg string) {
		spec := Spec{Binary: bin, Config: cfg}
		unit, err := RenderUnit(spec)
		if err != nil {
			if validBinary(bin) && strings.HasPrefix(cfg, "/") && !strings.Contains(cfg, "\x00") {
				t.Fatalf("RenderUnit(%q, %q): %v", bin, cfg, err)
			}
			return
		}
		if n := settingLines(unit); n != settingLines(mustUnit(t)) {
			t.Fatalf("unit for %q, %q has %d lines:\n%s", bin, cfg, n, unit)
		}
		got, err := UnitExecArgs(unit, "ExecStart")
		if err != nil {
			t.Fatalf("ExecStart of %q, %q: %v\n%s", bin, cfg, err, unit)
		}
		if want := execArgv(spec.StartArgs()); !slices.Equal(got, want) {
			t.Fatalf("ExecStart argv = %q, want %q", got, want)
		}
		if got[0] != bin && !slices.Equal(got[:3], []string{"/bin/sh", "-c", `exec "$0" "$@"`}) {
			t.Fatalf("ExecStart runs %q, neither the binary nor the sh wrapper", got[0])
		}
		post, err := UnitExecArgs(unit, "ExecStopPost")
		if err != nil || !slices.Equal(post[3:], []string{bin, cfg}) {
			t.Fatalf("ExecStopPost argv = %q, %v", post, err)
		}
		// Any single argument, not only paths.
		if strings.Contains(arg, "\x00") {
			return
		}
		line, err := JoinExecLine([]string{"/bin/true", arg})
		if err != nil {
			t.Fatalf("JoinExecLine(%q): %v", arg, err)
		}
		back, err := SplitExecLine(line)
		if err != nil || len(back) != 2 || back[1] != arg {
			t.Fatalf("arg %q rendered %q read back %q, %v", arg, line, back, err)
		}
	})
}

func mustUnit(t *testing.T) []byte {
	u, err := RenderUnit(Spec{Binary: "/usr/local/bin/oxios", Config: "/etc/oxios/config.toml"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func validBinary(p string) bool {
	return !strings.Contains(p, "\x00") && checkExecPath(p) == nil
}

// settingLines counts the lines that are not comments: a rendered unit has
// the same settings whatever its paths hold (no argument may inject one).
func settingLines(unit []byte) int {
	n := 0
	for _, l := range strings.Split(string(unit), "\n") {
		if !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}
