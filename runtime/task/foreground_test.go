//go:build linux

package task

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// notes collects what Foreground tells systemd.
type notes chan string

func (n notes) notify(s string) { n <- s }

// await returns the first note holding want; notes holding refuse on the
// way fail the test.
func (n notes) await(t *testing.T, want, refuse string) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case m := <-n:
			if refuse != "" && strings.Contains(m, refuse) {
				t.Fatalf("note %q while waiting for %q", m, want)
			}
			if strings.Contains(m, want) {
				return m
			}
		case <-deadline:
			t.Fatalf("no note with %q", want)
		}
	}
}

// fgRun is a Foreground running on a goroutine; done is closed when it
// returned, with its results in the other fields.
type fgRun struct {
	done chan struct{}
	st   *Started
	code int
	err  error
}

// runForeground runs Foreground on e's config, with an upgrade flag the
// test raises as `oxios upgrade` would before it stops the old daemon.
func runForeground(t *testing.T, e *env, upgrading *atomic.Value) (notes, context.CancelFunc, *fgRun) {
	r := e.connect(t)
	n := make(notes, 100)
	ctx, cancel := context.WithCancel(context.Background())
	run := &fgRun{done: make(chan struct{})}
	go func() {
		defer close(run.done)
		run.st, run.code, run.err = r.Foreground(ctx, ForegroundOptions{
			Notify: n.notify,
			Upgrading: func() (string, bool) {
				s, _ := upgrading.Load().(string)
				return s, s != ""
			},
			Outcome: func() string { return "upgraded to test" },
		})
	}()
	t.Cleanup(func() { cancel(); <-run.done })
	return n, cancel, run
}

// An upgrade stops the daemon under the start lock and starts another:
// Foreground says RELOADING=1 with the upgrade's status, stays (no exit,
// which systemd would take for the service's), and is READY=1 again on
// the new task, which it then owns: cancelling it stops that task.
func TestForegroundFollowsUpgrade(t *testing.T) {
	e := newEnv(t)
	var upgrading atomic.Value
	upgrading.Store("")
	n, cancel, run := runForeground(t, e, &upgrading)
	n.await(t, "READY=1", "")

	up := e.connect(t)
	h, err := up.Hold()
	if err != nil {
		t.Fatal(err)
	}
	old, _ := up.Current(context.Background())
	upgrading.Store("upgrading to test")
	if _, err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.await(t, "RELOADING=1", "READY=1")
	select {
	case <-run.done:
		t.Fatalf("Foreground returned during the upgrade: code %d, %v", run.code, run.err)
	default:
	}
	st, err := h.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	upgrading.Store("")
	h.Release()
	ready := n.await(t, "READY=1", "STOPPING=1")
	if st.PID == old.PID || !strings.Contains(ready, "upgraded to test") || !strings.Contains(ready, "PID "+strconv.Itoa(int(st.PID))) {
		t.Fatalf("after the upgrade: %q; new task PID %d, old %d", ready, st.PID, old.PID)
	}
	cancel()
	<-run.done
	if run.err != nil || run.st.PID != st.PID {
		t.Fatalf("Foreground ended with %+v, %v; want it attached to the new task %d", run.st, run.err, st.PID)
	}
	if cur, _ := up.Current(context.Background()); cur != nil {
		t.Fatalf("cancelled Foreground left %+v", cur)
	}
}

// Without an upgrade, a task stopped from elsewhere ends Foreground, as
// before: the exit is the service's.
func TestForegroundExitWithoutUpgrade(t *testing.T) {
	e := newEnv(t)
	var upgrading atomic.Value
	upgrading.Store("")
	n, _, run := runForeground(t, e, &upgrading)
	n.await(t, "READY=1", "")
	if _, err := e.connect(t).Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.await(t, "STATUS=exited", "RELOADING=1")
	<-run.done
	if run.err != nil {
		t.Fatalf("Foreground: %v", run.err)
	}
}

// While an upgrade drains the daemon, oxios-init stops reporting it live:
// the watchdog is fed all the same (systemd would otherwise kill the unit
// in the middle of the upgrade), and only then.
func TestForegroundWatchdogDuringUpgrade(t *testing.T) {
	var upgrading atomic.Bool
	asked := make(chan struct{}, 1)
	r := fakeSupervisor(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // draining: never live
	})})
	pings := make(chan struct{}, 1024)
	notify := func(s string) {
		if s == "WATCHDOG=1" {
			pings <- struct{}{}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.watchdog(ctx, uint32(os.Getpid()), 40*time.Millisecond, notify, func() (string, bool) {
		select {
		case asked <- struct{}{}:
		default:
		}
		return "upgrading to test", upgrading.Load()
	})
	// Not live, no upgrade: asked, and no ping.
	<-asked
	<-asked
	select {
	case <-pings:
		t.Fatal("a ping while neither live nor upgrading")
	default:
	}
	upgrading.Store(true)
	for n := 0; n < 3; n++ {
		select {
		case <-pings:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d pings in 5 s while an upgrade drains the daemon", n)
		}
	}
}
