package oneproc

import (
	"runtime"
	"testing"
)

// Apply sets one P, unless the environment has GOMAXPROCS.
func TestApply(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs) })

	runtime.GOMAXPROCS(2)
	Apply(func(string) (string, bool) { return "2", true })
	if p := runtime.GOMAXPROCS(0); p != 2 {
		t.Fatalf("with GOMAXPROCS set: %d Ps, want 2", p)
	}
	Apply(func(string) (string, bool) { return "", false })
	if p := runtime.GOMAXPROCS(0); p != 1 {
		t.Fatalf("without GOMAXPROCS: %d Ps, want 1", p)
	}
}
