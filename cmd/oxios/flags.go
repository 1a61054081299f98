package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// errHelp: -h/--help was given; the caller prints the usage on stdout.
var errHelp = errors.New("help requested")

// usageError is bad command-line input: exit 2, one line on stderr.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// flagDef is one flag: --long, and -s when it has a short form. A flag
// without a value name is a boolean.
type flagDef struct {
	long, short string
	value       string // "N", "FILE", ...; "" = boolean
	optional    string // value name of a flag whose value is optional (--f[=V])
	help        string
	set         func(string) error
}

// flagSet is the flags of one command, parsed GNU style: --long, --long=V,
// --long V, -s V, -s=V, flags and arguments in any order, "--" ends the
// flags. A hand-written parser instead of a library: bench/cli/RESULTS.md.
type flagSet struct {
	cmd  string // "oxios status", for messages
	defs []*flagDef
}

func newFlagSet(cmd string) *flagSet { return &flagSet{cmd: cmd} }

func (fs *flagSet) add(d *flagDef) { fs.defs = append(fs.defs, d) }

// Bool defines a boolean flag.
func (fs *flagSet) Bool(p *bool, long, short, help string) {
	fs.add(&flagDef{long: long, short: short, help: help, set: func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("expected true or false, got %q", v)
		}
		*p = b
		return nil
	}})
}

// Optional defines a flag whose value may be left out: --long alone (or
// =true) sets dflt, --long=false sets "", --long=V sets V. The value only
// ever follows "=", so the next argument is never taken for it.
func (fs *flagSet) Optional(p *string, long, value, dflt, help string) {
	fs.add(&flagDef{long: long, optional: value, help: help, set: func(v string) error {
		switch b, err := strconv.ParseBool(v); {
		case err != nil:
			*p = v
		case b:
			*p = dflt
		default:
			*p = ""
		}
		return nil
	}})
}

// String defines a flag with a string value.
func (fs *flagSet) String(p *string, long, short, value, help string) {
	fs.add(&flagDef{long: long, short: short, value: value, help: help, set: func(v string) error {
		*p = v
		return nil
	}})
}

// Int defines a flag with a non-negative integer value.
func (fs *flagSet) Int(p *int, long, short, value, help string) {
	fs.add(&flagDef{long: long, short: short, value: value, help: help, set: func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("expected a non-negative integer, got %q", v)
		}
		*p = n
		return nil
	}})
}

// Duration defines a flag with a Go duration value.
func (fs *flagSet) Duration(p *time.Duration, long, short, value, help string) {
	fs.add(&flagDef{long: long, short: short, value: value, help: help, set: func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("expected a duration like 30s, got %q", v)
		}
		*p = d
		return nil
	}})
}

// lookup finds a flag by what follows the dashes. A single-dash long name
// (-json, Go's flag style, which older scripts may use) is accepted too.
func (fs *flagSet) lookup(name string, long bool) *flagDef {
	for _, d := range fs.defs {
		if name == d.long || (!long && name == d.short && d.short != "") {
			return d
		}
	}
	return nil
}

// parse sets the flags in args and returns the other arguments in order.
func (fs *flagSet) parse(args []string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(rest, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			rest = append(rest, a)
			continue
		}
		n, err := fs.parseOne(args[i:])
		if err != nil {
			return nil, err
		}
		i += n
	}
	return rest, nil
}

// parseOne parses the flag at args[0]; it returns how many more arguments
// it used (1 for "--long VALUE", else 0).
func (fs *flagSet) parseOne(args []string) (int, error) {
	a := args[0]
	long := strings.HasPrefix(a, "--")
	name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
	if name == "h" || name == "help" {
		return 0, errHelp
	}
	d := fs.lookup(name, long)
	if d == nil && !long && !hasVal && len(name) > 1 {
		// -n5: a short flag with its value attached, as tail takes it.
		if d = fs.lookup(name[:1], false); d != nil && d.value != "" {
			name, val, hasVal = name[:1], name[1:], true
		} else {
			d = nil
		}
	}
	if d == nil {
		return 0, fs.unknown(a, name)
	}
	used := 0
	switch {
	case hasVal:
	case d.value == "":
		val = "true"
	case len(args) > 1:
		val, used = args[1], 1
	default:
		return 0, usagef("%s: flag %s needs a value (%s); see '%s --help'", fs.cmd, d.spelling(), d.value, fs.cmd)
	}
	if err := d.set(val); err != nil {
		return 0, usagef("%s: flag %s: %v", fs.cmd, d.spelling(), err)
	}
	return used, nil
}

func (fs *flagSet) unknown(arg, name string) error {
	var names []string
	for _, d := range fs.defs {
		names = append(names, "--"+d.long)
	}
	flag, _, _ := strings.Cut(arg, "=")
	msg := fmt.Sprintf("%s: unknown flag %s", fs.cmd, flag)
	if s := suggest("--"+name, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return usagef("%s; see '%s --help'", msg, fs.cmd)
}

func (d *flagDef) spelling() string { return "--" + d.long }

// usage writes the flag table of a command's help.
func (fs *flagSet) usage(w io.Writer) {
	if len(fs.defs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	for _, d := range fs.defs {
		left := "    --" + d.long
		if d.short != "" {
			left = "-" + d.short + ", --" + d.long
		}
		if d.value != "" {
			left += " " + d.value
		}
		if d.optional != "" {
			left += "[=" + d.optional + "]"
		}
		fmt.Fprintf(w, "  %-22s %s\n", left, d.help)
	}
	fmt.Fprintf(w, "  %-22s %s\n", "-h, --help", "print this help")
}

// suggest returns the candidate closest to s when it is close enough to be
// a typo (an edit distance of at most 2, or a prefix), else "".
func suggest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" && len(strings.TrimLeft(s, "-")) >= 2 {
		for _, c := range candidates {
			if strings.HasPrefix(c, s) {
				return c
			}
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance of a and b:
// insertions, deletions, substitutions and swaps of neighbours cost 1, so
// "stauts" is 1 from "status" (a swap), 2 from "start".
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
