package health

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// TestMain doubles as a helper process: with OXIOS_HEALTH_HELPER=listen
// it opens a listener (another process, owning its socket), prints the
// port and waits for stdin to close.
func TestMain(m *testing.M) {
	if os.Getenv("OXIOS_HEALTH_HELPER") == "notify" && notifyHelper != nil {
		os.Exit(notifyHelper())
	}
	if os.Getenv("OXIOS_HEALTH_HELPER") == "listen-on-cue" && listenOnCue != nil {
		os.Exit(listenOnCue())
	}
	if os.Getenv("OXIOS_HEALTH_HELPER") == "listen" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startListenHelper starts another process owning a listener; it returns
// its PID and port.
func startListenHelper(t *testing.T) (pid, port int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OXIOS_HEALTH_HELPER=listen")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	if _, err := fmt.Sscan(strings.TrimSpace(line), &port); err != nil {
		t.Fatalf("helper said %q", line)
	}
	return cmd.Process.Pid, port
}

// startSleeper starts an unrelated process (a supervised tree that does
// not own the listener).
func startSleeper(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func deadlineIn(d time.Duration) time.Time { return time.Now().Add(d) }

// listenOnCue is set by gate_test.go (Linux: it accepts with accept4).
var listenOnCue func() int

// notifyHelper is set by notify_test.go (Linux).
var notifyHelper func() int

// startMonitor makes and starts a Monitor, closed when the test ends.
func startMonitor(t *testing.T, cfg Config, hooks Hooks, log *logrus.Logger) *Monitor {
	t.Helper()
	m, err := NewMonitor(cfg, hooks, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
