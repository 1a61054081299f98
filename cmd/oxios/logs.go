package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"strings"
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

// writeLogLine prints one line of status's log tail: escaped on a
// terminal, as it is otherwise (oxios logs --raw's rule).
func writeLogLine(w io.Writer, line string) {
	if isTerminal(w) {
		line = printable(line)
	}
	fmt.Fprintln(w, line)
}

// printable escapes control characters (as \x1b) in text that comes from
// the container (probe details, log lines), so a terminal shows them
// instead of acting on them; tabs stay.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if isControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, `\x%02x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isControl(r rune) bool {
	return r != '\t' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0))
}
