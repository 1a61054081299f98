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
