//go:build linux

package health

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

// What PID 1 allocates per request and per probe decides when the Go
// runtime first collects, and its memory is larger for good from then on
// (bench/init/RESULTS.md). These tests hold the endpoint's and the owner
// lookup's share down.

// allocMonitor supervises a real oxios-demo (another process, so that
// its allocations are not counted here) with the image's default
// http:// probes at period, and serves the endpoint on a unix socket.
func allocMonitor(t *testing.T, period time.Duration) (*Monitor, string) {
	t.Helper()
	port := testenv.FreePort(t)
	demo := exec.Command(testenv.Bin(t, "oxios-demo"))
	demo.Env = append(os.Environ(), "OXIOS_DEMO_LISTEN=127.0.0.1:"+strconv.Itoa(port))
	demo.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { demo.Process.Kill(); demo.Wait() })
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	probe := func(path string) ProbeConfig {
		return ProbeConfig{Spec: base + path, Period: period, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3}
	}
	cfg := DefaultConfig()
	cfg.Readiness, cfg.Liveness = probe("/health/ready"), probe("/health")
	sock := filepath.Join(t.TempDir(), "health.sock")
	cfg.HealthListen = "unix:" + sock
	m := startMonitor(t, cfg, Hooks{}, nil)
	m.ChildStarted(demo.Process.Pid)
	testenv.WaitFor(t, "ready", 10*time.Second, m.Ready)
	return m, sock
}

// rawAsk sends req to the endpoint by system calls on reused buffers: the
// client allocates nothing, so the heap's counts are the server's.
func rawAsk(t *testing.T, sock *syscall.SockaddrUnix, req, buf []byte) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Connect(fd, sock); err != nil {
		t.Fatal(err)
	}
	if _, err := syscall.Write(fd, req); err != nil {
		t.Fatal(err)
	}
	for n := 1; n > 0; {
		if n, err = syscall.Read(fd, buf); err != nil {
			t.Fatal(err)
		}
	}
}

func heapAllocated() (objects, bytes uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs, ms.TotalAlloc
}

// Bytes allocated per request, by path. What is left of a /metrics is
// package net's, accepting the connection (the connection, its
// addresses); /readyz and /livez also run the daemon's http:// probe.
func TestEndpointAllocs(t *testing.T) {
	_, path := allocMonitor(t, time.Hour) // the runners idle once ready
	sock := &syscall.SockaddrUnix{Name: path}
	buf := make([]byte, 16<<10)
	for _, c := range []struct {
		path   string
		budget float64 // bytes per request
	}{{"/metrics", 1024}, {"/nope", 1024}, {"/status", 4096}, {"/readyz", 4096}, {"/livez", 4096}} {
		req := []byte("GET " + c.path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		rawAsk(t, sock, req, buf) // warm: pooled buffers, on-demand probers
		const n = 200
		o0, b0 := heapAllocated()
		for i := 0; i < n; i++ {
			rawAsk(t, sock, req, buf)
		}
		o1, b1 := heapAllocated()
		per, objs := float64(b1-b0)/n, float64(o1-o0)/n
		t.Logf("%-8s %6.0f B in %5.1f allocations per request", c.path, per, objs)
		if per > c.budget {
			t.Errorf("%s: %.0f B allocated per request; want at most %.0f", c.path, per, c.budget)
		}
	}
}

// The owner lookup of a listen gate (every on-demand /readyz) walks the
// daemon's tree and reads its descriptors without allocating.
func TestOwnerLookupAllocatesNothing(t *testing.T) {
	ino := testenv.ListenerInode(t)
	me, sleeper := os.Getpid(), startSleeper(t)
	inodes := []uint32{uint32(ino)}
	if ino, canTell := ownerOf(me, inodes); ino != inodes[0] || !canTell {
		t.Fatalf("ownerOf(self) = %d, %v; want %d, true", ino, canTell, inodes[0])
	}
	if ino, canTell := ownerOf(sleeper, inodes); ino != 0 || !canTell {
		t.Fatalf("ownerOf(an unrelated process) = %d, %v; want 0, true", ino, canTell)
	}
	if a := testing.AllocsPerRun(20, func() { ownerOf(me, inodes) }); a != 0 {
		t.Errorf("ownerOf: %v allocations per lookup; want 0", a)
	}
}
