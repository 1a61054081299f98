//go:build linux

package task

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *env) mustHaveNoContainer(t *testing.T, r *Runtime) {
	t.Helper()
	_, err := r.client.LoadContainer(r.ctx(context.Background()), e.cfg.Container.ID)
	if !errdefs.IsNotFound(err) {
		t.Fatalf("container %s still exists: %v", e.cfg.Container.ID, err)
	}
}

func TestStartReadyStatusStop(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	ctx := context.Background()
	st, err := r.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ready in %v, pid %d", st.Ready, st.PID)
	if code := get(t, st.URL+"/health/ready"); code != 200 {
		t.Fatalf("ready endpoint: %d", code)
	}
	s, err := r.Status(ctx)
	if err != nil || !s.Running() || !s.Ready || s.PID != st.PID || s.ImageDigest == "" || s.StartedAt == nil {
		t.Fatalf("status %+v, %v", s, err)
	}
	if got := s.String(); got != fmt.Sprintf("running (PID %d)", st.PID) {
		t.Fatalf("status string %q", got)
	}
	again, err := r.Start(ctx)
	if err != nil || !again.Adopted || again.PID != st.PID {
		t.Fatalf("second start: %+v, %v", again, err)
	}
	stopped, err := r.Stop(ctx)
	if err != nil || !stopped.WasRunning {
		t.Fatalf("stop: %+v %v", stopped, err)
	}
	e.mustHaveNoContainer(t, r)
	s, err = r.Status(ctx)
	if err != nil || s.Running() || s.String() != "stopped" {
		t.Fatalf("after stop: %+v %v", s, err)
	}
	if again, err := r.Stop(ctx); err != nil || again.WasRunning {
		t.Fatalf("second stop: %+v %v", again, err)
	}
}

func TestPortTakenRefusedBeforeCreating(t *testing.T) {
	e := newEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(e.cfg.Container.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := e.connect(t)
	_, err = r.Start(context.Background())
	var pe *PortError
	if !errors.As(err, &pe) || pe.Port != e.cfg.Container.Port || pe.Owner.PID != os.Getpid() {
		t.Fatalf("err = %v (%+v)", err, pe)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(e.cfg.Container.Port)) {
		t.Fatalf("error does not name the port: %v", err)
	}
	e.mustHaveNoContainer(t, r)
}

func TestArchiveMissing(t *testing.T) {
	e := newEnv(t)
	e.cfg.Image.Archive = e.dir + "/nope.tar"
	r := e.connect(t)
	_, err := r.Start(context.Background())
	if !errors.Is(err, ErrArchiveMissing) || !strings.Contains(err.Error(), "nope.tar") {
		t.Fatalf("err = %v", err)
	}
}

func TestFailedStartShowsTailAndRemoves(t *testing.T) {
	e := newEnv(t, "OXIOS_DEMO_EXIT_AFTER=0s", "OXIOS_DEMO_EXIT_CODE=3")
	// An earlier run's last words must not pass for this start's.
	os.MkdirAll(filepath.Dir(e.cfg.LogPath()), 0o755)
	os.WriteFile(e.cfg.LogPath(), []byte(strings.Repeat("an earlier run\n", 19)), 0o644)
	r := e.connect(t)
	_, err := r.Start(context.Background())
	var nr *NotReadyError
	if !errors.As(err, &nr) || len(nr.Tail) == 0 {
		t.Fatalf("err = %v (%+v)", err, nr)
	}
	if tail := strings.Join(nr.Tail, "\n"); strings.Contains(tail, "an earlier run") {
		t.Errorf("the tail shows lines from before this start:\n%s", tail)
	}
	t.Logf("reason %q, tail:\n%s", nr.Reason, strings.Join(nr.Tail, "\n"))
	e.mustHaveNoContainer(t, r)
}

func TestUnreachable(t *testing.T) {
	e := &env{}
	_ = e
	c := newEnvNoDaemon(t)
	_, err := Connect(context.Background(), Options{Config: c})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), c.Containerd.Address) {
		t.Fatalf("err = %v", err)
	}
}

// The shim runs oxios-logd when it sits next to the CLI, else the CLI
// itself (an oxios installed alone); never a file that cannot run.
func TestLogDriverFor(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "oxios")
	sib := filepath.Join(dir, LogDriverName)
	if got := LogDriverFor(exe); got != exe {
		t.Fatalf("no %s: got %s, want the CLI %s", LogDriverName, got, exe)
	}
	if err := os.WriteFile(sib, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := LogDriverFor(exe); got != exe {
		t.Fatalf("%s not executable: got %s, want the CLI", LogDriverName, got)
	}
	if err := os.Chmod(sib, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := LogDriverFor(exe); got != sib {
		t.Fatalf("got %s, want %s", got, sib)
	}
	if got := LogDriverFor(""); got != "" {
		t.Fatalf("unknown executable: got %q", got)
	}
}
