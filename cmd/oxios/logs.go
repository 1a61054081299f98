package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/a7garden/oxios/runtime/task"
)

func logsCommand() *command {
	return &command{
		name: "logs", aliases: []string{"log"}, synopsis: "[-f] [-n N]",
		summary: "print the daemon's append-only log; -f follows it",
		help: `Print the daemon's log, a host file (no containerd needed): the whole
current file, or its last N lines; -f keeps printing new lines, across
rotation, until interrupted.`,
		setup: func(fs *flagSet) runFunc {
			var o task.LogOptions
			fs.Bool(&o.Follow, "follow", "f", "keep printing new lines (across rotation)")
			fs.Int(&o.Lines, "lines", "n", "N", "print the last N lines (0 = the whole current file)")
			return noArgs("logs", func(e *env) int { return cmdLogs(e, o) })
		},
	}
}

// cmdLogs reads the host log file; containerd is not needed for that.
func cmdLogs(e *env, o task.LogOptions) int {
	l, err := loadConfig(e.common)
	if err != nil {
		report(e.stderr, err)
		return configFailCode(err, exitFail)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Escaping control characters on a terminal wraps out here (raw
	// when stdout is not a terminal).
	out := e.stdout
	if err := task.WriteLogs(ctx, l.cfg.LogPath(), out, o); err != nil {
		report(e.stderr, err)
		return exitFail
	}
	return exitOK
}

// writeLogLine prints one log line for a person (status's log tail): the
// place to escape control characters on a terminal.
func writeLogLine(w io.Writer, line string) {
	fmt.Fprintln(w, line)
}
