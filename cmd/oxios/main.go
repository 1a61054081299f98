// Command oxios runs one daemon as a containerd task: start, stop,
// restart, status, logs, and the systemd/launchd service. Wiring only:
// flags -> options -> one library call (runtime/task) -> exit code.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/a7garden/oxios/runtime/logdriver"
)

// Exit codes shared by every command (status has its LSB codes besides).
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2 // bad command line or config: unknown flag, command or key
	// exitNoRestart (EX_CONFIG): a start that no retry can fix, such as a
	// data dir the daemon cannot write. The systemd unit lists it in
	// RestartPreventExitStatus=, so it fails once, clearly, instead of
	// looping.
	exitNoRestart = 78
)

func main() {
	if logdriver.IsInvocation(os.Args[1:]) {
		if err := logdriver.Main(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "oxios log driver:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// env is what every command gets: its output streams and the common flags.
type env struct {
	stdout, stderr io.Writer
	common         *commonFlags
}

// commonFlags apply to every command, before or after its name.
type commonFlags struct {
	config  string
	address string
	verbose bool
}

// addCommon defines the common flags on fs, bound to c.
func addCommon(fs *flagSet, c *commonFlags) {
	fs.String(&c.config, "config", "", "FILE", "config file (else $OXIOS_CONFIG, then /etc/oxios/config.toml or ~/.config/oxios/config.toml)")
	fs.String(&c.address, "address", "", "SOCKET", "containerd socket (else $CONTAINERD_ADDRESS, containerd.address, then found)")
	fs.Bool(&c.verbose, "verbose", "v", "say more on stderr: which containerd, how long each step took")
}

// run dispatches a command line; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, common: &commonFlags{}}
	top := newFlagSet("oxios")
	addCommon(top, e.common)
	var version bool
	top.Bool(&version, "version", "V", "print the version and exit")
	name, rest, err := splitCommand(top, args)
	switch {
	case errors.Is(err, errHelp):
		mainUsage(stdout)
		return exitOK
	case err != nil:
		fmt.Fprintln(stderr, err)
		return exitUsage
	case version:
		return cmdVersion(e)
	case name == "":
		mainUsage(stderr)
		return exitUsage
	}
	cmd := findCommand(commands(), name)
	if cmd == nil {
		fmt.Fprintln(stderr, unknownCommand("oxios", name, commands()))
		return exitUsage
	}
	return cmd.exec(e, "oxios "+cmd.name, rest)
}

// splitCommand parses the flags before the command name and returns the
// name and everything after it.
func splitCommand(top *flagSet, args []string) (string, []string, error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			args = args[i+1:]
			break
		}
		if len(a) < 2 || a[0] != '-' {
			return a, args[i+1:], nil
		}
		n, err := top.parseOne(args[i:])
		if err != nil {
			return "", nil, err
		}
		i += n
	}
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		return args[0], args[1:], nil
	}
	return "", nil, nil
}

func unknownCommand(parent, name string, cmds []*command) string {
	msg := fmt.Sprintf("%s: unknown command %q", parent, name)
	if s := suggest(name, commandNames(cmds)); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return msg + fmt.Sprintf("; see '%s --help'", parent)
}
