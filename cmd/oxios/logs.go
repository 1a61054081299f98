package main

import (
	"context"
	"io"
	"os/signal"
	"syscall"

	"github.com/a7garden/oxios/internal/termesc"
	"github.com/a7garden/oxios/runtime/task"
)

// cmdLogs reads the host log file; containerd is not needed for that.
func cmdLogs(c commonFlags, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("logs", stderr)
	follow := fs.Bool("f", false, "follow: keep printing new lines (across rotation)")
	n := fs.Int("n", 0, "print the last N lines (0 = the whole current file)")
	raw := fs.Bool("raw", false, "print control characters as they are (on a terminal they are escaped, as \\x1b)")
	if fs.Parse(args) != nil {
		return 2
	}
	cfg, err := loadConfig(c)
	if err != nil {
		report(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The log is written by whatever runs in the container: a terminal
	// must not act on its escape sequences.
	if w := termesc.NewWriter(stdout); !*raw && termesc.IsTerminal(stdout) {
		defer w.Flush()
		stdout = w
	}
	if err := task.WriteLogs(ctx, cfg.LogPath(), stdout, task.LogOptions{Lines: *n, Follow: *follow}); err != nil {
		report(stderr, err)
		return 1
	}
	return 0
}
