package hostsvc

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrNUL is returned for an argument containing a NUL byte: no argv entry
// can hold one, and systemd refuses the escapes that would spell it.
var ErrNUL = errors.New("argument contains a NUL byte")

// QuoteExecArg escapes one argument for an Exec*= line of a unit file, so
// that systemd hands the program exactly arg (systemd.service(5),
// "COMMAND LINES", and systemd.syntax(7), "QUOTING"):
//
//   - `$` becomes `$$`: systemd expands $VAR and ${VAR} in Exec lines at
//     exec time, and `$$` is its escape for a literal dollar.
//   - `%` becomes `%%`: specifiers (%n, %h, ...) are expanded on the whole
//     line before it is split into words.
//   - An argument that is empty, is a lone `;` (the command separator),
//     or holds whitespace, a quote, a backslash, a control character,
//     a non-printable rune or a byte that is not UTF-8, is wrapped in
//     double quotes, with C-style escapes (`\"`, `\\`, `\n`, `\xNN`,
//     `\uNNNN`, `\UNNNNNNNN`) that systemd's cunescape() understands.
//     Printable non-ASCII runes are kept as they are: unit files are UTF-8.
func QuoteExecArg(arg string) (string, error) {
	if strings.IndexByte(arg, 0) >= 0 {
		return "", fmt.Errorf("%q: %w", arg, ErrNUL)
	}
	s := strings.NewReplacer("%", "%%", "$", "$$").Replace(arg)
	if !needsQuotes(arg) {
		return s, nil
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			// Not UTF-8: \xNN is one raw byte to systemd (its "eight_bit" case).
			fmt.Fprintf(&b, `\x%02x`, s[i])
			i++
			continue
		}
		i += n
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\v':
			b.WriteString(`\v`)
		default:
			switch {
			case r == ' ' || (r < utf8.RuneSelf && unicode.IsPrint(r)):
				b.WriteRune(r)
			case r < utf8.RuneSelf:
				fmt.Fprintf(&b, `\x%02x`, r)
			case unicode.IsPrint(r):
				b.WriteRune(r)
			case r <= 0xFFFF:
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

func needsQuotes(arg string) bool {
	if arg == "" || arg == ";" {
		return true
	}
	for i := 0; i < len(arg); {
		r, n := utf8.DecodeRuneInString(arg[i:])
		i += n
		if r == utf8.RuneError && n == 1 {
			return true
		}
		switch r {
		case '"', '\'', '\\':
			return true
		}
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}

// JoinExecLine renders argv as the value of an Exec*= setting. argv[0]
// must be an absolute, normalized path: systemd would read a leading
// `-`, `@`, `:`, `+` or `!` as a prefix, and refuses a path with `.` or
// `..` components.
func JoinExecLine(argv []string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("empty command line")
	}
	if err := checkExecPath(argv[0]); err != nil {
		return "", err
	}
	words := make([]string, len(argv))
	for i, a := range argv {
		q, err := QuoteExecArg(a)
		if err != nil {
			return "", fmt.Errorf("argument %d: %w", i, err)
		}
		words[i] = q
	}
	return strings.Join(words, " "), nil
}

// checkExecPath mirrors path_is_absolute() and path_is_normalized() from
// systemd's config_parse_exec().
func checkExecPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("executable %q is not an absolute path", p)
	}
	if len(p) > 4095 {
		return fmt.Errorf("executable path is longer than PATH_MAX (%d bytes)", len(p))
	}
	if strings.HasSuffix(p, "/") {
		return fmt.Errorf("executable %q ends with a slash", p)
	}
	for _, c := range strings.Split(p[1:], "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("executable %q is not a normalized path (empty, . or .. component)", p)
		}
	}
	return nil
}
