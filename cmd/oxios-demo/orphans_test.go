package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

// The orphans must outlive the demo. The test process makes itself a child
// subreaper (no root needed), so the orphans are reparented to it rather
// than to the machine's init: it can see them, prove they survived the
// demo's exit, and then kill and reap them itself. Not parallel: the
// subreaper flag is process-wide.
func TestOrphansOutliveTheDemo(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	const n = 3
	p := startDemo(t, []string{"OXIOS_DEMO_ORPHANS=" + strconv.Itoa(n)})
	p.ready()
	rx := regexp.MustCompile(`orphan_pid=(\d+)`)
	var pids []int
	for _, m := range rx.FindAllStringSubmatch(p.logText(), -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	if len(pids) != n {
		t.Fatalf("%d orphans logged, want %d:\n%s", len(pids), n, p.logText())
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
	})

	p.signal(syscall.SIGINT)
	if c := p.exitCode(); c != 0 {
		t.Fatalf("demo exit code %d", c)
	}
	for _, pid := range pids {
		ps, err := testenv.ProcStat(pid)
		if err != nil {
			t.Fatalf("orphan %d is gone: %v", pid, err)
		}
		state, ppid := ps.State, ps.PPid
		if state == "Z" || state == "X" {
			t.Fatalf("orphan %d is %s after the demo exited, want alive", pid, state)
		}
		if ppid != os.Getpid() {
			t.Fatalf("orphan %d has parent %d, want the subreaper %d", pid, ppid, os.Getpid())
		}
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if !strings.Contains(string(cmdline), modeOrphan) {
			t.Fatalf("pid %d runs %q, not an oxios-demo orphan", pid, cmdline)
		}
	}
	// They sleep until killed, with default dispositions: SIGTERM ends them.
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			t.Fatalf("wait4(%d): %v", pid, err)
		}
		if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Fatalf("orphan %d ended with %v, want SIGTERM", pid, ws)
		}
	}
}
