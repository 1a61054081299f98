//go:build !linux

package task

import (
	"context"
	"time"
)

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
