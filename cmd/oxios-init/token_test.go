package main

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The host's notify token leaves the environment the daemon inherits, and
// oxios-init becomes non-dumpable so /proc/1/environ (the original
// environment) is closed to the daemon's uid.
func TestTakeNotifyToken(t *testing.T) {
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0) })
	t.Setenv(notifyTokenEnv, "secret")
	if got := takeNotifyToken(); got != "secret" {
		t.Fatalf("token %q", got)
	}
	if _, ok := os.LookupEnv(notifyTokenEnv); ok {
		t.Fatalf("%s still in the environment", notifyTokenEnv)
	}
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil || d != 0 {
		t.Fatalf("dumpable = %d, %v; want 0", d, err)
	}
	if takeNotifyToken() != "" {
		t.Fatal("a token out of nothing")
	}
}
