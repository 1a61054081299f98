// Command oxios runs one daemon as a containerd task: start, stop,
// restart, status, logs, and the systemd/launchd service. Wiring only:
// flags -> options -> one library call (runtime/task) -> exit code.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/a7garden/oxios/runtime/logdriver"
)

const usage = `usage: oxios COMMAND [flags]

commands:
  start [--foreground]   start the daemon (alias: serve); exits once it is ready
  stop                   stop it (SIGTERM, grace, SIGKILL) and remove the task
  restart                stop, then start
  status [--json]        running (exit 0) or not (exit 3), LSB style
  logs [-f] [-n N]       the daemon's log (alias: log)
  install | uninstall    the systemd unit / launchd job (also: daemon install|uninstall)

common flags (before or after COMMAND):
  --config FILE          config file (else $OXIOS_CONFIG, /etc/oxios/config.toml
                         or $XDG_CONFIG_HOME/oxios/config.toml, else defaults)
  --address SOCKET       containerd socket (else $CONTAINERD_ADDRESS, containerd.address)
`

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

// run dispatches a command line; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	common, rest, err := splitCommon(args)
	if err != nil {
		fmt.Fprintln(stderr, "oxios:", err)
		return 2
	}
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, cargs := rest[0], rest[1:]
	switch cmd {
	case "start", "serve":
		return cmdStart(common, cargs, stdout, stderr)
	case "stop":
		return cmdStop(common, cargs, stdout, stderr)
	case "restart":
		return cmdRestart(common, cargs, stdout, stderr)
	case "status":
		return cmdStatus(common, cargs, stdout, stderr)
	case "logs", "log":
		return cmdLogs(common, cargs, stdout, stderr)
	case "install":
		return cmdInstall(withCommon(common, cargs), stdout, stderr)
	case "uninstall":
		return cmdUninstall(cargs, stdout, stderr)
	case "daemon":
		return cmdDaemon(common, cargs, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "oxios: unknown command %q\n%s", cmd, usage)
	return 2
}

// withCommon puts --config back for install, which parses its own flags
// and writes the config the user named into the unit. (uninstall has no
// --config: the unit's path does not depend on it.)
func withCommon(c commonFlags, args []string) []string {
	if c.config != "" {
		args = append([]string{"--config", c.config}, args...)
	}
	return args
}

// cmdDaemon keeps the old layer's spelling: oxios daemon install|uninstall.
func cmdDaemon(c commonFlags, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "install":
			return cmdInstall(withCommon(c, args[1:]), stdout, stderr)
		case "uninstall":
			return cmdUninstall(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintln(stderr, "usage: oxios daemon install|uninstall")
	return 2
}
