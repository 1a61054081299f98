package gauntlet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

// Scenario 6: the log directory is a small tmpfs, full before the daemon
// starts. The daemon keeps running (no restart, same PIDs, the log driver
// alive), the error is reported once, and logging resumes once there is
// space again. Log lines are made by flipping readiness: oxios-init logs
// "readiness changed" (verbosity 2) into the task's log.
func TestFullLogDisk(t *testing.T) {
	rw := scenario(t, "6", "full log disk")
	testenvRoot(t)
	logDir, err := os.MkdirTemp("", "gxlog")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", logDir, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
		rw.fail(t, "mount a tmpfs on %s: %v", logDir, err)
	}
	// Registered before newEnv: runs after its `oxios stop`.
	t.Cleanup(func() { unix.Unmount(logDir, unix.MNT_DETACH); os.Remove(logDir) })
	filler := filepath.Join(logDir, "filler")
	if err := fill(filler); err != nil {
		rw.fail(t, "fill %s: %v", logDir, err)
	}

	e := newEnv(t, setup{logDir: logDir})
	r := e.mustStart(rw)
	rep0, err := e.supervisor()
	if err != nil {
		rw.fail(t, "oxios-init /status: %v", err)
	}
	st0, _ := e.status()
	driver0 := logDriverPIDs(e.logPath())
	rw.note("start on a full disk: exit %d in %v", r.code, r.took.Round(time.Millisecond))

	// While full: make oxios-init log, 5 readiness flips = 10 lines.
	const flips = 5
	for i := 0; i < flips; i++ {
		if err := e.flipReadiness(); err != nil {
			rw.errorf(t, "readiness flip %d while the disk is full: %v", i, err)
			break
		}
	}
	rep1, err := e.supervisor()
	st1, _ := e.status()
	crashed := []string{}
	if err != nil || rep1.Child.PID != rep0.Child.PID || rep1.Child.Restarts != rep0.Child.Restarts {
		crashed = append(crashed, fmt.Sprintf("daemon (%+v -> %+v, %v)", rep0.Child, rep1.Child, err))
	}
	if st1.PID != st0.PID || st1.State != "running" {
		code := "-"
		if st1.ExitCode != nil {
			code = fmt.Sprint(*st1.ExitCode)
		}
		crashed = append(crashed, fmt.Sprintf("oxios-init (PID %d -> %d, task %s, exit code %s)", st0.PID, st1.PID, st1.State, code))
	}
	if len(driver0) == 0 {
		crashed = append(crashed, "log driver (never seen)")
	}
	for _, pid := range driver0 {
		if !testenv.Alive(pid) {
			crashed = append(crashed, fmt.Sprintf("log driver (PID %d)", pid))
		}
	}
	if len(crashed) > 0 {
		rw.errorf(t, "crashed while the disk was full: %s", strings.Join(crashed, ", "))
	}

	// Reported once: the ENOSPC of the log file, wherever oxios reports it
	// (the CLI's output, containerd's log that collects the shim's and the
	// driver's stderr, status).
	_, sr := e.status()
	ctrdLog, _ := os.ReadFile(e.ctrd.LogPath)
	reports := bytes.Count(ctrdLog, []byte("no space left on device")) +
		strings.Count(r.stderr+r.stdout+sr.stdout+sr.stderr, "no space left on device")
	switch {
	case reports == 0:
		rw.errorf(t, "the full log disk was never reported (CLI, status, containerd log)")
	case reports > 1:
		rw.errorf(t, "the full log disk was reported %d times, want once", reports)
	}

	// Space again: logging must resume.
	size0 := fileSize(e.logPath())
	t0 := time.Now()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	var resumed bool
	for i := 0; i < 20 && !resumed; i++ {
		if err := e.flipReadiness(); err != nil {
			rw.errorf(t, "readiness flip after freeing space: %v", err)
			break
		}
		resumed = eventually(500*time.Millisecond, 20*time.Millisecond, func() bool {
			return fileSize(e.logPath()) > size0
		})
	}
	if !resumed {
		rw.errorf(t, "logging did not resume after freeing %s (log size %d)", logDir, fileSize(e.logPath()))
		rw.lost("every log line from the moment the disk was full")
		return
	}
	rw.recovered(time.Since(t0))
	// The report clears once writing works again.
	var cleared bool
	eventually(5*time.Second, 50*time.Millisecond, func() bool {
		st, r := e.status()
		cleared = r.code == 0 && st.raw["log_error"] == nil
		return cleared
	})
	if !cleared {
		_, r := e.status()
		rw.errorf(t, "status still reports a log error after logging resumed: %s", strings.TrimSpace(r.stdout))
	}
	// What was dropped, as the log itself says (a marker line, if any).
	logb, _ := os.ReadFile(e.logPath())
	if m := reDropped.FindSubmatch(logb); m != nil {
		rw.lost(fmt.Sprintf("%s log lines written while full, as the log's marker says (we made %d)", m[1], 2*flips))
	} else {
		rw.lost(fmt.Sprintf("the log lines written while full (we made %d; no marker in the log says how many)", 2*flips))
	}
	where := "CLI/status"
	if bytes.Contains(ctrdLog, []byte("no space left on device")) {
		where = "containerd's log (the driver's stderr)"
	}
	rw.note("ENOSPC reported %d time(s), in %s", reports, where)
}

var reDropped = regexp.MustCompile(`(\d+) log lines? dropped`)

// flipReadiness makes the daemon unready, then ready, waiting each time
// until oxios-init's readiness follows (it logs each change).
func (e *env) flipReadiness() error {
	for _, want := range []bool{false, true} {
		path := "/debug/unready"
		if want {
			path = "/debug/ready"
		}
		if code, err := e.post(path); err != nil || code != 200 {
			return fmt.Errorf("POST %s: %d %v", path, code, err)
		}
		if !eventually(5*time.Second, 10*time.Millisecond, func() bool {
			rep, err := e.supervisor()
			return err == nil && rep.Ready == want
		}) {
			return fmt.Errorf("oxios-init readiness did not become %v", want)
		}
	}
	return nil
}

func fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return -1
	}
	return st.Size()
}

// logDriverPIDs finds the oxios log driver processes writing logPath.
func logDriverPIDs(logPath string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		var pid int
		if _, err := fmt.Sscan(d.Name(), &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte("oxios-log-driver")) && bytes.Contains(b, []byte(logPath)) {
			pids = append(pids, pid)
		}
	}
	return pids
}
