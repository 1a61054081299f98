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
	// Closing an inotify fd waits for an SRCU grace period in the kernel
	// (fsnotify group teardown): 5-15 ms measured on the test VM, on the
	// path to "ready". Close it off that path.
	defer func() { go f.Close() }()
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

// dirEvents sends on the returned channel (coalesced) whenever something
// in dir is written, created or renamed, until ctx ends: `logs -f` waits
// on it instead of polling.
func dirEvents(ctx context.Context, dir string) (<-chan struct{}, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	mask := uint32(unix.IN_MODIFY | unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE)
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		f.Close()
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	ch := make(chan struct{}, 1)
	context.AfterFunc(ctx, func() { f.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				close(ch)
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, nil
}
