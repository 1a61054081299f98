package gauntlet

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Scenario 5: a foreign process takes the port between two runs. start
// refuses, names the port and the process, and creates nothing; once the
// port is free again, start works.
func TestForeignPort(t *testing.T) {
	rw := scenario(t, "5", "foreign port")
	e := newEnv(t, setup{})
	cl, ctx := e.client()

	e.mustStart(rw)
	if r := e.oxios(60*time.Second, "stop"); r.code != 0 {
		rw.fail(t, "first stop: %s", r)
	}
	before, err := e.countLeaks(cl, ctx)
	if err != nil || !before.zero() {
		rw.fail(t, "after the first run: %v %v", before, err)
	}

	// The foreign listener: this test binary in helper mode, a separate
	// process that is neither oxios nor a child of the CLI.
	self, _ := os.Executable()
	fg := exec.Command(self)
	fg.Env = append(os.Environ(), helperEnv+"=listen:"+strconv.Itoa(e.port))
	out, _ := fg.StdoutPipe()
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fg.Process.Kill(); fg.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "listening\n" {
		rw.fail(t, "helper did not listen on %d: %q", e.port, line)
	}

	r := e.oxios(60*time.Second, "start")
	port, pid := strconv.Itoa(e.port), strconv.Itoa(fg.Process.Pid)
	switch {
	case r.code == 0:
		rw.errorf(t, "start succeeded with port %d taken: %s", e.port, r)
	case !strings.Contains(r.stderr, port):
		rw.errorf(t, "the refusal does not name port %s: %s", port, r)
	case !strings.Contains(r.stderr, pid):
		rw.errorf(t, "the refusal does not name the owner PID %s: %s", pid, r)
	default:
		rw.note("refused in %v: %q", r.took.Round(time.Millisecond), strings.TrimSpace(lastLine(r.stderr)))
	}
	after, err := e.countLeaks(cl, ctx)
	if err != nil || !after.zero() {
		rw.errorf(t, "the refused start created something: %v %v", after, err)
	}
	st, sr := e.status()
	if sr.code != 3 || st.State != "orphaned" {
		rw.errorf(t, "status with a foreign listener: want orphaned (exit 3): %s", sr)
	}

	// Recovery: the foreign process goes, the next start works.
	t0 := time.Now()
	fg.Process.Kill()
	fg.Wait()
	e.mustStart(rw)
	rw.recovered(time.Since(t0))
	if st, sr := e.status(); sr.code != 0 || !st.Ready {
		rw.errorf(t, "status after recovery: %s", sr)
	}
	rw.lost("nothing")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
