package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// waitFile returns once path exists. It watches the directory with
// inotify (oxios-init creates the file by rename: IN_MOVED_TO) and checks
// after the watch is in place, so a file created meanwhile is not missed.
func waitFile(ctx context.Context, path string) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	// Non-blocking, so os.File reads go through the poller and Close
	// (on ctx cancel) wakes the reader.
	f := os.NewFile(uintptr(fd), "inotify")
	defer f.Close()
	mask := uint32(unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE)
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), mask); err != nil {
		return fmt.Errorf("watch %s: %w", filepath.Dir(path), err)
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	buf := make([]byte, 4096)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if _, err := f.Read(buf); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("watch %s: %w", path, err)
		}
	}
}
