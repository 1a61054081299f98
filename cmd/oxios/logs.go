package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/a7garden/oxios/internal/termesc"
	"github.com/a7garden/oxios/runtime/task"
)

type logsOptions struct {
	task.LogOptions
	raw bool
}

func logsCommand() *command {
	return &command{
		name: "logs", aliases: []string{"log"}, synopsis: "[-f] [-n N] [--raw]",
		summary: "print the daemon's append-only log; -f follows it",
		help: `Print the daemon's log, a host file (no containerd needed): the whole
current file, or its last N lines; -f keeps printing new lines, across
rotation, until interrupted. On a terminal, control characters are shown
escaped (\x1b, \r), as journalctl does; --raw prints them as they are.`,
		setup: func(fs *flagSet) runFunc {
			var o logsOptions
			fs.Bool(&o.Follow, "follow", "f", "keep printing new lines (across rotation)")
			fs.Int(&o.Lines, "lines", "n", "N", "print the last N lines (0 = the whole current file)")
			fs.Bool(&o.raw, "raw", "", "print control characters as they are (on a terminal they are escaped, as \\x1b)")
			return noArgs("logs", func(e *env) int { return cmdLogs(e, o) })
		},
	}
}

// cmdLogs reads the host log file; containerd is not needed for that.
func cmdLogs(e *env, o logsOptions) int {
	l, err := loadConfig(e.common)
	if err != nil {
		report(e.stderr, err)
		return configFailCode(err, exitFail)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The log is written by whatever runs in the container: a terminal
	// must not act on its escape sequences.
	out := e.stdout
	if w := termesc.NewWriter(out); !o.raw && termesc.IsTerminal(out) {
		defer w.Flush()
		out = w
	}
	if err := task.WriteLogs(ctx, l.cfg.LogPath(), out, o.LogOptions); err != nil {
		report(e.stderr, err)
		return exitFail
	}
	return exitOK
}

// writeLogLine prints one line of status's log tail: escaped on a
// terminal, as oxios logs does.
func writeLogLine(w io.Writer, line string) {
	if isTerminal(w) {
		line = termesc.String(line)
	}
	fmt.Fprintln(w, line)
}
