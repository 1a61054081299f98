package oneproc

import (
	"runtime"
	"testing"
)

// The initialiser has left this test binary one P, and FromEnv sets what
// GOMAXPROCS asks for, ignoring what the runtime would ignore.
func TestOneProc(t *testing.T) {
	if p := runtime.GOMAXPROCS(0); p != 1 {
		t.Fatalf("after the initialiser: %d Ps, want 1", p)
	}
	t.Cleanup(func() { runtime.GOMAXPROCS(1) })
	for _, tc := range []struct {
		env  string
		set  bool
		want int
	}{
		{"", false, 1},
		{"3", true, 3},
		{"0", true, 3},
		{"two", true, 3},
		{"-2", true, 3},
		{"2", true, 2},
	} {
		FromEnv(func(string) (string, bool) { return tc.env, tc.set })
		if p := runtime.GOMAXPROCS(0); p != tc.want {
			t.Fatalf("GOMAXPROCS=%q (set %v): %d Ps, want %d", tc.env, tc.set, p, tc.want)
		}
	}
}
