//go:build !linux

package task

import (
	"context"
	"os"
	"time"
)

// waitFile polls where inotify does not exist (the CLI also builds for
// macOS, where containerd runs inside a Linux VM anyway).
func waitFile(ctx context.Context, path string) error {
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dirEvents ticks where inotify does not exist.
func dirEvents(ctx context.Context, dir string) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				close(ch)
				return
			case <-t.C:
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch, nil
}
