package task

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestIsTransport: an outage is recognised by its gRPC code or errno,
// wrapped or not; other failures, whatever their text says, are not.
func TestIsTransport(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.Unavailable, "transport is closing"), true},
		{fmt.Errorf("wait: %w", status.Error(codes.Unavailable, "error reading from server: EOF")), true},
		{fmt.Errorf("wait: %w", io.EOF), true},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{status.Error(codes.NotFound, "connection refused"), false},
		{errors.New("EOF"), false},
		{errdefs.ErrFailedPrecondition, false},
	} {
		if got := isTransport(c.err); got != c.want {
			t.Errorf("isTransport(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
