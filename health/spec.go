package health

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kind names a probe mechanism.
type Kind string

const (
	KindTCP    Kind = "tcp"
	KindHTTP   Kind = "http"
	KindHTTPS  Kind = "https"
	KindExec   Kind = "exec"
	KindListen Kind = "listen"
	KindNotify Kind = "notify"
)

// ErrSpec is wrapped by every probe spec parse error.
var ErrSpec = errors.New("invalid probe spec")

// ErrNoHTTPS says that this build has no https:// probes: the Makefile
// builds oxios-init with -tags oxios_nohttps (see tls.go).
var ErrNoHTTPS = errors.New("https:// probes are not built into this oxios-init (the Makefile builds it with -tags oxios_nohttps to keep PID 1 small): " +
	"probe the daemon over http://, tcp:// or listen://, or build oxios-init without that tag")

// Spec is a parsed probe spec, the text a user gives to --readiness and
// friends:
//
//	tcp://HOST:PORT          connect, close, send nothing (HOST defaults to 127.0.0.1)
//	http://HOST[:PORT]/PATH  GET, 200-399 is success (also https://)
//	exec:COMMAND ARGS...     exit 0 is success; ' " and \ quote as in sh
//	listen://[HOST]:PORT     a LISTEN socket on the port, seen without connecting
//	notify://                the daemon's sd_notify READY=1 on the NOTIFY_SOCKET
//	                         oxios-init gives it (readiness and startup only)
//	notify+SPEC              READY=1, then confirmed by SPEC (tcp, http(s) or listen)
type Spec struct {
	Kind Kind
	Host string   // tcp, listen: IP or name without brackets ("" = any for listen)
	Port int      // tcp, listen
	URL  string   // http, https: the normalized URL
	Argv []string // exec
	Then *Spec    // notify: the probe that confirms READY=1, or nil
}

// maxSpecLen bounds what a user can hand us; a probe spec is a flag value.
const maxSpecLen = 4096

// ParseSpec parses one probe spec. The empty string is an error: "off" is
// decided by the caller before parsing.
func ParseSpec(s string) (Spec, error) {
	if len(s) > maxSpecLen {
		return Spec{}, fmt.Errorf("%w: longer than %d bytes", ErrSpec, maxSpecLen)
	}
	if !utf8.ValidString(s) {
		return Spec{}, fmt.Errorf("%w %q: not UTF-8", ErrSpec, s)
	}
	switch {
	case strings.HasPrefix(s, "exec:"):
		return parseExec(s)
	case strings.HasPrefix(s, "tcp://"):
		return parseHostPort(KindTCP, s, strings.TrimPrefix(s, "tcp://"))
	case strings.HasPrefix(s, "listen://"):
		return parseHostPort(KindListen, s, strings.TrimPrefix(s, "listen://"))
	case strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"):
		return parseHTTP(s)
	case s == "notify://":
		return Spec{Kind: KindNotify}, nil
	case strings.HasPrefix(s, "notify+"):
		return parseNotifySpec(s)
	}
	return Spec{}, fmt.Errorf("%w %q: want tcp://HOST:PORT, http(s)://HOST:PORT/PATH, exec:CMD ARGS, listen://[HOST]:PORT, notify:// or notify+SPEC", ErrSpec, s)
}

// parseNotifySpec reads notify+SPEC: READY=1, then SPEC must pass. exec: is
// not offered (one kind of process the supervisor starts for probes is
// enough), nor a second notify.
func parseNotifySpec(s string) (Spec, error) {
	then, err := ParseSpec(strings.TrimPrefix(s, "notify+"))
	if err != nil {
		return Spec{}, fmt.Errorf("%w %q: after notify+: %w", ErrSpec, s, err)
	}
	switch then.Kind {
	case KindExec, KindNotify:
		return Spec{}, fmt.Errorf("%w %q: notify+ takes a tcp://, http(s):// or listen:// probe", ErrSpec, s)
	}
	return Spec{Kind: KindNotify, Then: &then}, nil
}

func parseHostPort(kind Kind, orig, hp string) (Spec, error) {
	if strings.ContainsAny(hp, "/?#@") {
		return Spec{}, fmt.Errorf("%w %q: %s:// takes only HOST:PORT", ErrSpec, orig, kind)
	}
	host, portStr, err := net.SplitHostPort(hp)
	if err != nil {
		return Spec{}, fmt.Errorf("%w %q: %v", ErrSpec, orig, err)
	}
	port, err := parsePort(portStr)
	if err != nil {
		return Spec{}, fmt.Errorf("%w %q: %v", ErrSpec, orig, err)
	}
	if err := checkHost(host); err != nil {
		return Spec{}, fmt.Errorf("%w %q: %v", ErrSpec, orig, err)
	}
	switch kind {
	case KindTCP:
		if host == "" {
			// The supervisor shares the daemon's network namespace; the
			// loopback address is the one a local daemon always answers on.
			host = "127.0.0.1"
		}
	case KindListen:
		// listen:// compares socket addresses, so only IP literals make sense.
		if host != "" {
			a, err := netip.ParseAddr(host)
			if err != nil || a.Zone() != "" {
				return Spec{}, fmt.Errorf("%w %q: listen:// HOST must be an IP address or empty", ErrSpec, orig)
			}
			host = a.Unmap().String()
		}
	}
	return Spec{Kind: kind, Host: host, Port: port}, nil
}

func parsePort(s string) (int, error) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("port %q: want a number 1-65535", s)
	}
	p, _ := strconv.Atoi(s)
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q: want a number 1-65535", s)
	}
	return p, nil
}

// checkHost accepts IP literals and DNS-like names; anything else (spaces,
// control characters, percent signs) is a typo, not a host.
func checkHost(h string) error {
	if h == "" {
		return nil
	}
	if _, err := netip.ParseAddr(h); err == nil {
		if strings.Contains(h, "%") {
			return fmt.Errorf("host %q: zones are not supported", h)
		}
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("host %q: too long", h)
	}
	for _, r := range h {
		if !(r == '-' || r == '.' || r == '_' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			return fmt.Errorf("host %q: not an IP address or host name", h)
		}
	}
	return nil
}

func parseHTTP(s string) (Spec, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Spec{}, fmt.Errorf("%w %q: %v", ErrSpec, s, err)
	}
	if u.Opaque != "" || u.Host == "" {
		return Spec{}, fmt.Errorf("%w %q: want %s://HOST[:PORT]/PATH", ErrSpec, s, u.Scheme)
	}
	if u.User != nil {
		return Spec{}, fmt.Errorf("%w %q: user info is not supported", ErrSpec, s)
	}
	if err := checkHost(u.Hostname()); err != nil || u.Hostname() == "" {
		return Spec{}, fmt.Errorf("%w %q: bad host", ErrSpec, s)
	}
	if p := u.Port(); p != "" {
		if _, err := parsePort(p); err != nil {
			return Spec{}, fmt.Errorf("%w %q: %v", ErrSpec, s, err)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return Spec{}, fmt.Errorf("%w %q: empty port", ErrSpec, s)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return Spec{}, fmt.Errorf("%w %q: control character or space in URL", ErrSpec, s)
		}
	}
	u.Fragment, u.RawFragment = "", ""
	if u.Path == "" && u.RawPath == "" {
		u.Path = "/"
	}
	return Spec{Kind: Kind(u.Scheme), Host: u.Hostname(), URL: u.String()}, nil
}

func parseExec(s string) (Spec, error) {
	argv, err := splitArgs(strings.TrimPrefix(s, "exec:"))
	if err != nil {
		return Spec{}, fmt.Errorf("%w %q: %v", ErrSpec, s, err)
	}
	if len(argv) == 0 || argv[0] == "" {
		return Spec{}, fmt.Errorf("%w %q: exec: needs a command", ErrSpec, s)
	}
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return Spec{}, fmt.Errorf("%w %q: NUL byte in an argument", ErrSpec, s)
		}
	}
	return Spec{Kind: KindExec, Argv: argv}, nil
}

// splitArgs splits like a POSIX shell without expansion: whitespace
// separates, '...' is literal, "..." honours \" and \\, and \ escapes the
// next character outside quotes.
func splitArgs(s string) ([]string, error) {
	var (
		argv  []string
		cur   strings.Builder
		inArg bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				argv = append(argv, cur.String())
				cur.Reset()
				inArg = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated ' quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inArg = true
		case c == '"':
			inArg = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New(`unterminated " quote`)
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New(`trailing \`)
			}
			i++
			cur.WriteByte(s[i])
			inArg = true
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		argv = append(argv, cur.String())
	}
	return argv, nil
}

// String renders the spec so that ParseSpec(s.String()) gives s back.
func (s Spec) String() string {
	switch s.Kind {
	case KindTCP, KindListen:
		return string(s.Kind) + "://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	case KindHTTP, KindHTTPS:
		return s.URL
	case KindNotify:
		if s.Then == nil {
			return "notify://"
		}
		return "notify+" + s.Then.String()
	case KindExec:
		var b strings.Builder
		b.WriteString("exec:")
		for i, a := range s.Argv {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(quoteArg(a))
		}
		return b.String()
	}
	return ""
}

func quoteArg(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\n'\"\\") {
		return a
	}
	if !strings.Contains(a, "'") {
		return "'" + a + "'"
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(a) + `"`
}
