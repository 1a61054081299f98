package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// runFunc runs a command with its flags parsed; args are the arguments
// that are not flags.
type runFunc func(e *env, args []string) int

// command is one entry of the command table: its name and spellings, its
// help, and setup, which defines its flags on a flag set and returns the
// function that runs it. Help, completion and dispatch all read this table.
type command struct {
	name     string
	aliases  []string
	synopsis string // after "oxios NAME", e.g. "[--json] [-n N]"
	summary  string // one line, for the command list
	help     string // paragraphs below the usage line
	sub      []*command
	setup    func(fs *flagSet) runFunc
}

func commands() []*command {
	return []*command{
		startCommand(), stopCommand(), restartCommand(), statusCommand(), logsCommand(),
		upgradeCommand(), rollbackCommand(), historyCommand(),
		installCommand(), uninstallCommand(), daemonCommand(), configCommand(), kubeCommand(),
		versionCommand(), completionCommand(), helpCommand(),
	}
}

func findCommand(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
		for _, a := range c.aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

func commandNames(cmds []*command) []string {
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
		names = append(names, c.aliases...)
	}
	return names
}

// flags returns the command's flag set (its own flags, then the common
// ones) and its run function.
func (c *command) flags(path string, common *commonFlags) (*flagSet, runFunc) {
	fs := newFlagSet(path)
	var fn runFunc
	if c.setup != nil {
		fn = c.setup(fs)
	}
	addCommon(fs, common)
	return fs, fn
}

// exec parses args and runs the command, or its subcommand.
func (c *command) exec(e *env, path string, args []string) int {
	if len(c.sub) > 0 {
		return c.execGroup(e, path, args)
	}
	fs, fn := c.flags(path, e.common)
	rest, err := fs.parse(args)
	if errors.Is(err, errHelp) {
		c.usage(e.stdout, path)
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	return fn(e, rest)
}

// execGroup runs `oxios GROUP SUB ...` (daemon, config).
func (c *command) execGroup(e *env, path string, args []string) int {
	top := newFlagSet(path)
	addCommon(top, e.common)
	name, rest, err := splitCommand(top, args)
	switch {
	case errors.Is(err, errHelp):
		c.usage(e.stdout, path)
		return exitOK
	case err != nil:
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	case name == "":
		fmt.Fprintf(e.stderr, "%s: needs a command (%s); see '%s --help'\n", path, strings.Join(commandNames(c.sub), ", "), path)
		return exitUsage
	}
	sub := findCommand(c.sub, name)
	if sub == nil {
		fmt.Fprintln(e.stderr, unknownCommand(path, name, c.sub))
		return exitUsage
	}
	return sub.exec(e, path+" "+sub.name, rest)
}

// usage writes the command's help (for --help, on stdout).
func (c *command) usage(w io.Writer, path string) {
	syn := c.synopsis
	if syn == "" && len(c.sub) > 0 {
		syn = strings.Join(commandNames(c.sub), "|")
	}
	fmt.Fprintf(w, "usage: %s %s\n", path, strings.TrimSpace(syn+" [flags]"))
	if len(c.aliases) > 0 {
		fmt.Fprintf(w, "   (also: oxios %s)\n", strings.Join(c.aliases, ", oxios "))
	}
	fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
	if len(c.sub) > 0 {
		fmt.Fprintln(w, "\ncommands:")
		for _, s := range c.sub {
			fmt.Fprintf(w, "  %-22s %s\n", s.name+" "+s.synopsis, s.summary)
		}
	}
	fs, _ := c.flags(path, &commonFlags{})
	fs.usage(w)
}

// mainUsage is `oxios --help`.
func mainUsage(w io.Writer) {
	fmt.Fprint(w, `usage: oxios COMMAND [flags]

oxios runs one daemon as a containerd task, supervised by oxios-init.

commands:
`)
	for _, c := range commands() {
		name := c.name
		if len(c.aliases) > 0 {
			name += " (" + strings.Join(c.aliases, ", ") + ")"
		}
		fmt.Fprintf(w, "  %-20s %s\n", name, c.summary)
	}
	fmt.Fprint(w, `
common flags (before or after COMMAND):
  --config FILE          config file (else $OXIOS_CONFIG, /etc/oxios/config.toml
                         or $XDG_CONFIG_HOME/oxios/config.toml, else defaults)
  --address SOCKET       containerd socket (else $CONTAINERD_ADDRESS, containerd.address;
                         unset: the system socket, else the private one of make run)
  -v, --verbose          say more on stderr
  -V, --version          print the version
  -h, --help             print help; 'oxios COMMAND --help' for a command's

exit codes: 0 ok, 1 failed, 2 bad command line or config; status: 0 running,
3 not running, 4 unknown (containerd unreachable).
`)
}

func helpCommand() *command {
	return &command{
		name: "help", synopsis: "[COMMAND]", summary: "print help for oxios or a command",
		help: "Print the usage of oxios, or of COMMAND (as 'oxios COMMAND --help' does).",
		setup: func(fs *flagSet) runFunc {
			return func(e *env, args []string) int {
				if len(args) == 0 {
					mainUsage(e.stdout)
					return exitOK
				}
				return helpFor(e, commands(), "oxios", args)
			}
		},
	}
}

// helpFor prints the usage of the command that args name (oxios help
// config check).
func helpFor(e *env, cmds []*command, path string, args []string) int {
	c := findCommand(cmds, args[0])
	if c == nil {
		fmt.Fprintln(e.stderr, unknownCommand(path, args[0], cmds))
		return exitUsage
	}
	path += " " + c.name
	if len(args) > 1 && len(c.sub) > 0 {
		return helpFor(e, c.sub, path, args[1:])
	}
	c.usage(e.stdout, path)
	return exitOK
}

// noArgs wraps a run function that takes no arguments.
func noArgs(path string, fn func(e *env) int) runFunc {
	return func(e *env, args []string) int {
		if len(args) > 0 {
			fmt.Fprintf(e.stderr, "oxios %s: unexpected argument %q; see 'oxios %s --help'\n", path, args[0], path)
			return exitUsage
		}
		return fn(e)
	}
}
