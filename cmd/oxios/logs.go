package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/a7garden/oxios/internal/termesc"
	"github.com/a7garden/oxios/runtime/logdriver"
	"github.com/a7garden/oxios/runtime/task"
)

type logsOptions struct {
	task.LogOptions
	raw bool
}

func logsCommand() *command {
	return &command{
		name: "logs", aliases: []string{"log"}, synopsis: "[-f] [-n N] [--since T] [--until T] [-t] [--stream S] [--raw]",
		summary: "print the daemon's append-only log; -f follows it",
		help: `Print the daemon's lines from its log, a host file (no containerd
needed), and from the files rotated out of it, oldest first: all of them,
or the last N; -f keeps printing new lines, across rotation, until
interrupted. Each line is printed as the daemon wrote it; --timestamps
puts the time the log driver read it in front. --since and --until take
a duration back from now (10m, 2h) or a time (2006-01-02T15:04:05Z,
2006-01-02 15:04:05 or 2006-01-02, local time unless a zone is given).
Lines logged before oxios recorded times and streams are printed as they
are, but left out by --since, --until and --stream. On a terminal,
control characters are shown escaped (\x1b, \r), as journalctl does;
--raw prints them as they are. With logs.driver = "journald" the lines
are in the journal: this runs journalctl with the same selection.`,
		setup: func(fs *flagSet) runFunc {
			var o logsOptions
			fs.Bool(&o.Follow, "follow", "f", "keep printing new lines (across rotation)")
			fs.Int(&o.Lines, "lines", "n", "N", "print the last N lines (0 = all)")
			logTime(fs, &o.Since, "since", "only lines logged at or after T (10m, or a time)")
			logTime(fs, &o.Until, "until", "only lines logged at or before T (10m, or a time)")
			fs.Bool(&o.Timestamps, "timestamps", "t", "print the time each line was logged before it")
			fs.add(&flagDef{long: "stream", value: "S", help: "only stdout or only stderr", set: func(v string) error {
				if v != logdriver.Stdout && v != logdriver.Stderr {
					return fmt.Errorf("expected stdout or stderr, got %q", v)
				}
				o.Stream = v
				return nil
			}})
			fs.Bool(&o.raw, "raw", "", "print control characters as they are (on a terminal they are escaped, as \\x1b)")
			return noArgs("logs", func(e *env) int { return cmdLogs(e, o) })
		},
	}
}

// logTime defines a --since/--until flag: a duration back from now or a
// time (task.ParseLogTime).
func logTime(fs *flagSet, p *time.Time, long, help string) {
	fs.add(&flagDef{long: long, value: "T", help: help, set: func(v string) error {
		t, err := task.ParseLogTime(v, time.Now())
		if err != nil {
			return err
		}
		*p = t
		return nil
	}})
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
	write := func() error { return task.WriteLogs(ctx, l.cfg.LogPath(), out, o.LogOptions) }
	if l.cfg.Logs.Driver == logdriver.DriverJournald {
		write = func() error {
			return task.WriteJournal(ctx, l.cfg.Container.ID, l.cfg.Logs.JournalSocket, e.stdout, e.stderr, o.LogOptions)
		}
	}
	if err := write(); err != nil {
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
