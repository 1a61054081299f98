package task

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/contract"
)

// fakeSupervisor serves srv as oxios-init's health endpoint, on the run
// dir's socket of the Runtime it returns.
func fakeSupervisor(t *testing.T, srv *http.Server) *Runtime {
	t.Helper()
	dir, err := os.MkdirTemp("", "wd") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := config.Default()
	cfg.Container.RunDir = dir
	r := &Runtime{cfg: cfg, out: os.Stderr}
	os.MkdirAll(r.ctrDir(), 0o755)
	l, err := net.Listen("unix", filepath.Join(r.ctrDir(), filepath.Base(contract.HealthSocket)))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return r
}

// WATCHDOG=1 goes out only while oxios-init's /livez says live: a hung
// daemon must stop the pings so that systemd acts. oxios-init's health
// endpoint is played by a real HTTP server on the run dir's socket.
func TestWatchdogOnlyWhileLive(t *testing.T) {
	var live atomic.Bool
	live.Store(true)
	// sawDown: a /livez was answered 503. The watchdog is one goroutine
	// (GET, then notify), so by then every ping of a live answer is in.
	sawDown := make(chan struct{}, 1)
	r := fakeSupervisor(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/livez" && live.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		select {
		case sawDown <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})})

	pings := make(chan struct{}, 1024)
	notify := func(s string) {
		if s == "WATCHDOG=1" {
			pings <- struct{}{}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.watchdog(ctx, uint32(os.Getpid()), 40*time.Millisecond, notify, nil) // pings every 20 ms
	// Pings flowing is the point, not their rate: a wall-clock bound on a
	// shared CI machine only measures its load (200 ms failed at load 25).
	deadline := time.After(5 * time.Second)
	for n := 0; n < 4; n++ {
		select {
		case <-pings:
		case <-deadline:
			t.Fatalf("%d pings in 5s while live (every 20ms expected)", n)
		}
	}
	live.Store(false)
	select {
	case <-sawDown:
	case <-time.After(5 * time.Second):
		t.Fatal("the watchdog never asked /livez after it went down")
	}
	for len(pings) > 0 {
		<-pings
	}
	select {
	case <-pings:
		t.Fatal("a ping while not live")
	case <-time.After(200 * time.Millisecond): // an absence has no event: a window is the thing under test
	}
	live.Store(true)
	select {
	case <-pings:
	case <-time.After(5 * time.Second):
		t.Fatal("no pings after liveness came back")
	}
}

// Every /livez asks on a connection of its own and closes it: a foreground
// run asks once per watchdog tick, for days.
func TestLiveLeavesNoConnection(t *testing.T) {
	closed := make(chan struct{}, 16)
	r := fakeSupervisor(t, &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				closed <- struct{}{}
			}
		},
	})
	const n = 3
	for range n {
		if !r.Live() {
			t.Fatal("Live() = false against a 200 /livez")
		}
	}
	for i := range n {
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d /livez connections still open", n-i, n)
		}
	}
}
