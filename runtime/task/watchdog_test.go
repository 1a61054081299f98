package task

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a7garden/oxios/runtime/config"
)

// WATCHDOG=1 goes out only while oxios-init's /livez says live: a hung
// daemon must stop the pings so that systemd acts. oxios-init's health
// endpoint is played by a real HTTP server on the run dir's socket.
func TestWatchdogOnlyWhileLive(t *testing.T) {
	dir, err := os.MkdirTemp("", "wd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.Container.RunDir = dir
	r := &Runtime{cfg: cfg, out: os.Stderr}
	os.MkdirAll(r.runDir(), 0o755)
	l, err := net.Listen("unix", filepath.Join(r.runDir(), filepath.Base(config.HealthSocket)))
	if err != nil {
		t.Fatal(err)
	}
	var live atomic.Bool
	live.Store(true)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/livez" && live.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})}
	go srv.Serve(l)
	defer srv.Close()

	var mu sync.Mutex
	var pings []time.Time
	notify := func(s string) {
		if s == "WATCHDOG=1" {
			mu.Lock()
			pings = append(pings, time.Now())
			mu.Unlock()
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(pings) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.watchdog(ctx, 40*time.Millisecond, notify) // pings every 20 ms
	time.Sleep(200 * time.Millisecond)              // a window of time is the thing under test
	if n := count(); n < 4 {
		t.Fatalf("%d pings in 200ms while live", n)
	}
	live.Store(false)
	time.Sleep(60 * time.Millisecond) // let an in-flight tick finish
	n0 := count()
	time.Sleep(200 * time.Millisecond)
	if n := count(); n != n0 {
		t.Fatalf("%d pings while not live", n-n0)
	}
	live.Store(true)
	time.Sleep(200 * time.Millisecond)
	if count() == n0 {
		t.Fatal("no pings after liveness came back")
	}
}
