//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

// openPty returns a new pseudo-terminal's controlling side and its
// terminal (/dev/pts/N), as a terminal emulator holds them.
func openPty(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/pts/%d: %v", n, err)
	}
	return ptm, pts
}

// runOnTerminal runs bin/oxios with stderr on a pty and returns what the
// terminal showed and the exit code.
func (c *cli) runOnTerminal(args ...string) (string, int) {
	c.t.Helper()
	ptm, pts := openPty(c.t)
	defer ptm.Close()
	cmd := exec.Command(c.bin, append(args, "--config", c.config)...)
	cmd.Env = append(os.Environ(), "CONTAINERD_ADDRESS=", "NOTIFY_SOCKET=")
	cmd.Stdout, cmd.Stderr = io.Discard, pts
	var screen bytes.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(&screen, ptm) // ends with EIO once every holder of pts closed it
	}()
	err := cmd.Run()
	pts.Close()
	<-copied
	return screen.String(), testenv.ExitCode(c.t, err)
}

func TestIsTerminal(t *testing.T) {
	ptm, pts := openPty(t)
	defer ptm.Close()
	defer pts.Close()
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if !isTerminal(pts) || isTerminal(devnull) || isTerminal(w) || isTerminal(&bytes.Buffer{}) {
		t.Errorf("isTerminal: pty %v, /dev/null %v, pipe %v", isTerminal(pts), isTerminal(devnull), isTerminal(w))
	}
}

// On a terminal, the image import shows one line per blob and a start
// still waiting after a second says what for; in a pipe, neither shows.
func TestCLIProgressOnTerminalOnly(t *testing.T) {
	delay := "OXIOS_DEMO_READY_DELAY=2500ms"
	onTTY := newCLI(t, "")
	withDelay(t, onTTY, delay)
	screen, code := onTTY.runOnTerminal("start")
	t.Logf("terminal:\n%s", screen)
	if code != 0 {
		t.Fatalf("start on a terminal: exit %d", code)
	}
	for _, want := range []string{"imported blob ", "% of the archive)", "waiting for readiness: http://127.0.0.1:", "/health/ready → failure", "s; container.start_timeout 15s)"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the terminal did not show %q", want)
		}
	}
	// At most one waiting line a second: their elapsed times are at least
	// a second apart (a ticker may deliver late, never early).
	last := -1.0
	for _, line := range strings.Split(screen, "\n") {
		_, after, ok := strings.Cut(line, "→ ")
		if !ok {
			continue
		}
		var sec float64
		if _, err := fmt.Sscanf(after[strings.LastIndex(after, "(")+1:], "%f s;", &sec); err != nil {
			t.Fatalf("waiting line %q: %v", line, err)
		}
		if sec < 1 || (last >= 0 && sec-last < 0.99) {
			t.Errorf("waiting line at %.1f s (previous at %.1f s): more than once a second, or before the first second", sec, last)
		}
		last = sec
	}
	onTTY.run("stop")

	inPipe := newCLI(t, "")
	withDelay(t, inPipe, delay)
	out, errs, code := inPipe.run("start")
	if code != 0 || strings.Contains(errs, "imported blob") || strings.Contains(errs, "waiting for") || strings.Contains(out, "waiting") {
		t.Errorf("start in a pipe: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	inPipe.run("stop")
}

// withDelay adds an environment variable for the demo daemon to c's
// config (newCLI's env line).
func withDelay(t *testing.T, c *cli, kv string) {
	b, err := os.ReadFile(c.config)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `env = ["OXIOS_DEMO_LISTEN`, fmt.Sprintf(`env = [%q, "OXIOS_DEMO_LISTEN`, kv), 1)
	if s == string(b) {
		t.Fatal(errors.New("newCLI's config has no env line"))
	}
	os.WriteFile(c.config, []byte(s), 0o644)
}
