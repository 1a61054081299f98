package main

import (
	"context"
	"io"
	"os/signal"
	"syscall"

	"github.com/a7garden/oxios/runtime/task"
)

// cmdLogs reads the host log file; containerd is not needed for that.
func cmdLogs(c commonFlags, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("logs", stderr)
	follow := fs.Bool("f", false, "follow: keep printing new lines (across rotation)")
	n := fs.Int("n", 0, "print the last N lines (0 = the whole current file)")
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
	if err := task.WriteLogs(ctx, cfg.LogPath(), stdout, task.LogOptions{Lines: *n, Follow: *follow}); err != nil {
		report(stderr, err)
		return 1
	}
	return 0
}
