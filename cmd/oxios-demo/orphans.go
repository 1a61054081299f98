package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Hidden modes: the demo re-executes itself to leave orphans behind, like
// the real daemon's MCP children when it is killed. The chain is
//
//	oxios-demo ─ oxios-demo __orphan-spawner N ─ oxios-demo __orphan (xN)
//
// The spawner starts the N sleepers, prints their PIDs and exits at once; the
// demo reaps the spawner. The sleepers have lost their parent from the start
// and are reparented to the nearest subreaper or PID 1 (oxios-init in the
// container), which is what a supervisor has to clean up.
const (
	modeSpawner = "__orphan-spawner"
	modeOrphan  = "__orphan"
)

// isHiddenMode reports whether argv[1] selects a hidden mode.
func isHiddenMode(args []string) bool {
	return len(args) > 0 && (args[0] == modeSpawner || args[0] == modeOrphan)
}

// runHidden runs a hidden mode and returns the exit code.
func runHidden(args []string) int {
	switch args[0] {
	case modeSpawner:
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "oxios-demo: "+modeSpawner+" takes one argument")
			return 2
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 0 || n > maxOrphans {
			fmt.Fprintf(os.Stderr, "oxios-demo: %s %q: bad count\n", modeSpawner, args[1])
			return 2
		}
		return runSpawner(n)
	default:
		runOrphan()
		return 0
	}
}

// runSpawner starts n sleepers and prints one PID per line on stdout.
func runSpawner(n int) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "oxios-demo: orphan spawner: %v\n", err)
		return 1
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "oxios-demo: orphan spawner: %v\n", err)
		return 1
	}
	for i := 0; i < n; i++ {
		cmd := exec.Command(self, modeOrphan)
		// /dev/null, not the demo's stdout/stderr: an orphan holding the
		// log pipe open would keep every reader of it (a test's cmd.Wait,
		// a shim's log copier) waiting long after the demo is gone, which
		// would test the pipe, not the reaping.
		cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "oxios-demo: orphan spawner: start orphan %d: %v\n", i+1, err)
			return 1
		}
		fmt.Println(cmd.Process.Pid)
		cmd.Process.Release()
	}
	return 0
}

// runOrphan sleeps until killed. Default signal dispositions are kept, so a
// SIGTERM or SIGKILL from the supervisor ends it.
func runOrphan() {
	for {
		time.Sleep(time.Hour)
	}
}

// spawnOrphans runs the spawner, waits for it (so it never lingers as our
// zombie) and returns the orphans' PIDs.
func spawnOrphans(n int) ([]int, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%s=%d: find own executable: %w", envOrphans, n, err)
	}
	cmd := exec.Command(self, modeSpawner, strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s=%d: %w", envOrphans, n, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s=%d: start %s: %w", envOrphans, n, self, err)
	}
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err == nil {
			pids = append(pids, pid)
		}
	}
	if err := cmd.Wait(); err != nil {
		return pids, fmt.Errorf("%s=%d: orphan spawner: %w", envOrphans, n, err)
	}
	return pids, nil
}
