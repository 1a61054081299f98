package hostsvc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SplitExecLine parses the value of an Exec*= setting the way systemd 252
// does (config_parse_exec, extract_first_word with EXTRACT_UNQUOTE and
// EXTRACT_CUNESCAPE, cunescape_one, replace_env) and returns the argv the
// program would receive. It exists to check QuoteExecArg against an
// independent reading of systemd.syntax(7); it is deliberately strict:
// anything QuoteExecArg never emits and systemd would treat specially
// (a specifier other than %%, an environment variable reference, a `;`
// command separator, a `-@:+!|` prefix) is an error rather than a guess.
func SplitExecLine(value string) ([]string, error) {
	line, err := unescapeSpecifiers(value)
	if err != nil {
		return nil, err
	}
	var argv []string
	p := line
	for {
		p = strings.TrimLeft(p, sdWhitespace)
		if p == "" {
			break
		}
		if p[0] == ';' && (len(p) == 1 || strings.IndexByte(sdWhitespace, p[1]) >= 0) {
			return nil, errors.New("unquoted ';' separates a second command")
		}
		var word string
		if strings.HasPrefix(p, `\;`) && (len(p) == 2 || strings.IndexByte(sdWhitespace, p[2]) >= 0) {
			// config_parse_exec: a lone `\;` is a literal ";" argument.
			word, p = ";", p[2:]
		} else if word, p, err = extractWord(p); err != nil {
			return nil, err
		}
		if len(argv) == 0 {
			if err := checkExecutable(word); err != nil {
				return nil, err
			}
		}
		if word, err = unescapeDollars(word); err != nil {
			return nil, err
		}
		argv = append(argv, word)
	}
	if len(argv) == 0 {
		return nil, errors.New("empty command line")
	}
	return argv, nil
}

// sdWhitespace is systemd's WHITESPACE, the word separators of Exec lines.
const sdWhitespace = " \t\n\r"

// unescapeSpecifiers applies specifier expansion as far as we use it:
// `%%` is a literal `%`; every other specifier is refused.
func unescapeSpecifiers(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("'%' at the end of the line is an incomplete specifier")
		}
		return "", fmt.Errorf("specifier %%%c would be expanded by systemd", s[i+1])
	}
	return b.String(), nil
}

// unescapeDollars applies the exec-time environment expansion as far as
// we use it: `$$` is a literal `$`; a reference to a variable is refused.
func unescapeDollars(w string) (string, error) {
	if !strings.Contains(w, "$") {
		return w, nil
	}
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		if w[i] != '$' {
			b.WriteByte(w[i])
			continue
		}
		if i+1 < len(w) && w[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if i+1 < len(w) && (w[i+1] == '{' || isEnvNameByte(w[i+1])) {
			return "", fmt.Errorf("%q references an environment variable", w)
		}
		// replace_env() keeps a `$` that starts no reference.
		b.WriteByte('$')
	}
	return b.String(), nil
}

func isEnvNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// extractWord is extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)
// starting at a non-separator. Quotes may open and close anywhere inside
// a word (a"b c"d is one word, "ab cd"); a backslash escape is valid both
// inside and outside quotes.
func extractWord(p string) (word, rest string, err error) {
	var b []byte
	var quote byte
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\':
			if i+1 == len(p) {
				return "", "", errors.New("backslash at the end of the line")
			}
			decoded, n, err := cunescapeOne(p[i+1:])
			if err != nil {
				return "", "", err
			}
			b = append(b, decoded...)
			i += n
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				b = append(b, c)
			}
		case c == '"' || c == '\'':
			quote = c
		case strings.IndexByte(sdWhitespace, c) >= 0:
			return string(b), p[i:], nil
		default:
			b = append(b, c)
		}
	}
	if quote != 0 {
		return "", "", fmt.Errorf("unterminated %c quote", quote)
	}
	return string(b), "", nil
}

// cunescapeOne decodes the escape after a backslash (systemd's
// cunescape_one with accept_nul=false) and says how many bytes it used.
func cunescapeOne(s string) (decoded []byte, n int, err error) {
	simple := map[byte]byte{'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t',
		'v': '\v', '\\': '\\', '"': '"', '\'': '\'', 's': ' '}
	if c, ok := simple[s[0]]; ok {
		return []byte{c}, 1, nil
	}
	hexAt := func(digits int) (uint64, error) {
		if len(s) < 1+digits {
			return 0, fmt.Errorf("short \\%c escape", s[0])
		}
		for _, c := range []byte(s[1 : 1+digits]) {
			if !strings.ContainsRune("0123456789abcdefABCDEF", rune(c)) {
				return 0, fmt.Errorf("bad hex digit %q in \\%c escape", c, s[0])
			}
		}
		return strconv.ParseUint(s[1:1+digits], 16, 32)
	}
	switch c := s[0]; {
	case c == 'x':
		v, err := hexAt(2)
		if err != nil {
			return nil, 0, err
		}
		if v == 0 {
			return nil, 0, errors.New(`\x00 is refused`)
		}
		return []byte{byte(v)}, 3, nil // one raw byte, UTF-8 or not
	case c == 'u' || c == 'U':
		digits := 4
		if c == 'U' {
			digits = 8
		}
		v, err := hexAt(digits)
		if err != nil {
			return nil, 0, err
		}
		r := rune(v)
		if v == 0 || v > utf8.MaxRune || !utf8.ValidRune(r) {
			return nil, 0, fmt.Errorf("\\%c%0*x is not a valid code point", c, digits, v)
		}
		return utf8.AppendRune(nil, r), 1 + digits, nil
	case c >= '0' && c <= '7':
		if len(s) < 3 || s[1] < '0' || s[1] > '7' || s[2] < '0' || s[2] > '7' {
			return nil, 0, errors.New("octal escape needs three digits")
		}
		v := int(c-'0')<<6 | int(s[1]-'0')<<3 | int(s[2]-'0')
		if v == 0 || v > 255 {
			return nil, 0, fmt.Errorf("octal escape \\%s is out of range", s[:3])
		}
		return []byte{byte(v)}, 3, nil
	default:
		return nil, 0, fmt.Errorf("unknown escape \\%c", c)
	}
}

// checkExecutable applies config_parse_exec's rules to the first word:
// no prefix (-@:+!|), an absolute normalized path, and string_is_safe():
// no quote, backslash, control character or DEL. A `$` is refused too:
// systemd executes the path literally but expands variables in argv[0],
// so no spelling of it is unambiguous.
func checkExecutable(word string) error {
	if word != "" && strings.IndexByte("-@:+!|", word[0]) >= 0 {
		return fmt.Errorf("executable %q starts with an Exec prefix character", word)
	}
	if err := checkExecPath(word); err != nil {
		return err
	}
	if !execPathSafe(word) {
		return fmt.Errorf("executable name %q contains special characters", word)
	}
	return nil
}

// UnitExecArgs reads back the argv of one Exec*= setting of a rendered
// unit, through SplitExecLine.
func UnitExecArgs(unit []byte, key string) ([]string, error) {
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return SplitExecLine(v)
		}
	}
	return nil, errors.New(key + "= not found in unit")
}
