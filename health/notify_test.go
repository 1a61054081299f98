//go:build linux

package health

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestParseNotify(t *testing.T) {
	for _, tc := range []struct {
		in              string
		ok, ready, stop bool
		status          string
	}{
		{"READY=1", true, true, false, ""},
		{"READY=1\nSTATUS=up and running\n", true, true, false, "up and running"},
		{"STATUS=loading\nMAINPID=7\nX_CUSTOM=1", true, false, false, "loading"},
		{"STOPPING=1", true, false, true, ""},
		{"READY=0", true, false, false, ""},
		{"READY", false, false, false, ""},
		{"=1", false, false, false, ""},
		{"READY=1\x00", false, false, false, ""},
		{"\xff\xfe", false, false, false, ""},
	} {
		m, ok := parseNotify([]byte(tc.in))
		status := ""
		if m.status != nil {
			status = *m.status
		}
		if ok != tc.ok || m.ready != tc.ready || m.stopping != tc.stop || status != tc.status {
			t.Errorf("parseNotify(%q) = %+v (status %q), %v", tc.in, m, status, ok)
		}
	}
}

// notifyHarness is a bound notify socket with its log captured.
type notifyHarness struct {
	st   *notifyState
	sock *notifySocket
	addr string
	mu   sync.Mutex
	log  bytes.Buffer
}

func (h *notifyHarness) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.Write(b)
}

func (h *notifyHarness) logged() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.String()
}

func newNotifyHarness(t *testing.T) *notifyHarness {
	t.Helper()
	h := &notifyHarness{}
	log := logrus.New()
	log.SetOutput(h)
	log.SetLevel(logrus.DebugLevel)
	var c Config
	c.Readiness.Spec = "notify://"
	addr, err := c.PrepareNotify()
	if err != nil || !strings.HasPrefix(addr, "@") {
		t.Fatalf("PrepareNotify: %q, %v", addr, err)
	}
	h.addr = addr
	h.st = newNotifyState(log)
	h.sock = newNotifySocket(addr, h.st)
	if err := h.sock.open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.sock.Close() })
	return h
}

// next returns the state's change channel, to wait on after a send.
func (h *notifyHarness) next() <-chan struct{} {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	return h.st.changed
}

func waitChange(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("no state change: %s", what)
	}
}

// notifySender is a real process that sends each line it reads on stdin
// (with "\\n" for newlines) to NOTIFY_SOCKET, and prints "sent".
type notifySender struct {
	t   *testing.T
	cmd *exec.Cmd
	in  *os.File
	out *bufio.Reader
}

// startNotifySender starts the sender directly (outside any tree but the
// test's) or, with viaShell, as the child of a shell: its PID is then
// the shell's descendant, not the shell itself.
func startNotifySender(t *testing.T, addr string, viaShell bool) *notifySender {
	t.Helper()
	var cmd *exec.Cmd
	if viaShell {
		cmd = exec.Command("sh", "-c", `"$0" -test.run='^$'; true`, os.Args[0])
	} else {
		cmd = exec.Command(os.Args[0], "-test.run=^$")
	}
	cmd.Env = append(os.Environ(), "OXIOS_HEALTH_HELPER=notify", "NOTIFY_SOCKET="+addr)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = pr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	s := &notifySender{t: t, cmd: cmd, in: pw, out: bufio.NewReader(out)}
	t.Cleanup(func() { pw.Close(); cmd.Wait() })
	return s
}

func (s *notifySender) send(msg string) {
	s.t.Helper()
	s.in.WriteString(strings.ReplaceAll(msg, "\n", `\n`) + "\n")
	if line, err := s.out.ReadString('\n'); err != nil || line != "sent\n" {
		s.t.Fatalf("sender: %q %v", line, err)
	}
}

func init() { notifyHelper = notifySend }

// notifySend is the helper process of startNotifySender.
func notifySend() int {
	c, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		return 1
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		c.Write([]byte(strings.ReplaceAll(in.Text(), `\n`, "\n")))
		os.Stdout.WriteString("sent\n")
	}
	return 0
}

// READY=1 counts only from the supervised tree: a process outside it is
// refused (logged once), one inside it (the daemon's descendant) is
// taken, STATUS= is kept, and a new child starts over.
func TestNotifyOnlyFromTheTree(t *testing.T) {
	h := newNotifyHarness(t)
	tree := startNotifySender(t, h.addr, true) // root: the shell
	outsider := startNotifySender(t, h.addr, false)
	h.st.setRoot(tree.cmd.Process.Pid)
	p := newNotifyProber(h.st, nil)

	c := h.next()
	outsider.send("READY=1")
	outsider.send("READY=1")
	outsider.send(strings.Repeat("X", notifyMax+10))
	outsider.send("garbage")
	tree.send("STATUS=loading") // datagrams are read in order: the ones above were judged
	waitChange(t, c, "STATUS from the tree")
	if r := probeOnce(t, p, time.Second); r.Status != Failure {
		t.Fatalf("ready after a forged READY=1: %v %q", r.Status, r.Detail)
	}
	if got := h.st.Status(); got != "loading" {
		t.Errorf("STATUS %q, want loading", got)
	}
	log := h.logged()
	for _, reason := range []string{"sender outside the supervised tree", "oversized datagram"} {
		if n := strings.Count(log, reason); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", reason, n, log)
		}
	}
	// "garbage" has no '=' but comes from outside: refused for its sender.
	_, seen := p.pace()
	if seen == nil {
		t.Fatal("notify:// before READY=1 does not wait for an event")
	}

	c = h.next()
	tree.send("READY=1\nSTATUS=serving")
	waitChange(t, c, "READY=1 from the tree")
	select {
	case <-seen:
	default:
		t.Error("the runner's event did not fire on READY=1")
	}
	if r := probeOnce(t, p, time.Second); r.Status != Success {
		t.Fatalf("READY=1 from the daemon's child: %v %q", r.Status, r.Detail)
	}
	if got := h.st.Status(); got != "serving" {
		t.Errorf("STATUS %q, want serving", got)
	}

	// A new child must say READY=1 again; the old tree is no longer heard.
	newRoot := startNotifySender(t, h.addr, false)
	p.SetRoot(newRoot.cmd.Process.Pid)
	if r := probeOnce(t, p, time.Second); r.Status != Failure {
		t.Fatalf("the next child is ready without READY=1: %q", r.Detail)
	}
	c = h.next()
	tree.send("READY=1")
	newRoot.send("STATUS=starting")
	waitChange(t, c, "STATUS from the new child")
	if r := probeOnce(t, p, time.Second); r.Status != Failure {
		t.Fatalf("the old tree's READY=1 counted for the new child: %q", r.Detail)
	}
}

// A message sent before the monitor heard of the child (between fork and
// ChildStarted) is kept and judged once it has.
func TestNotifyBeforeChildStarted(t *testing.T) {
	h := newNotifyHarness(t)
	d := startNotifySender(t, h.addr, false)
	c := h.next()
	d.send("READY=1")
	waitChange(t, c, "READY=1 kept for later")
	p := newNotifyProber(h.st, nil)
	p.SetRoot(d.cmd.Process.Pid)
	if r := probeOnce(t, p, time.Second); r.Status != Success {
		t.Fatalf("READY=1 sent before ChildStarted: %v %q", r.Status, r.Detail)
	}
}

func TestChildEnv(t *testing.T) {
	env := ChildEnv([]string{"A=1", "NOTIFY_SOCKET=/run/oxios/notify.sock", "B=2"}, "@x")
	if strings.Join(env, " ") != "A=1 B=2 NOTIFY_SOCKET=@x" {
		t.Errorf("ChildEnv: %v", env)
	}
	env = ChildEnv([]string{"NOTIFY_SOCKET=/run/oxios/notify.sock", "B=2"}, "")
	if strings.Join(env, " ") != "B=2" {
		t.Errorf("ChildEnv without notify://: %v", env)
	}
}
