package task

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/contract"
)

// notifyRig binds a real notify socket (SO_PASSCRED) in a temp run dir
// and collects what readNotify accepts for taskPID and token.
type notifyRig struct {
	path     string
	accepted chan notifyMsg
}

func newNotifyRig(t *testing.T, taskPID uint32, token string) *notifyRig {
	t.Helper()
	dir, err := os.MkdirTemp("", "nt") // short: sun_path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := config.Default()
	cfg.Container.RunDir = dir
	r := &Runtime{cfg: cfg, out: os.Stderr}
	os.MkdirAll(r.notifyDir(), 0o755)
	c, err := r.listenNotify()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	tok := goFuture(func() (string, error) { return token, nil })
	rig := &notifyRig{path: filepath.Join(r.notifyDir(), filepath.Base(contract.NotifySocket)), accepted: make(chan notifyMsg, 16)}
	go readNotify(c, func(m notifyMsg) bool {
		if m.ready && accepted(m, taskPID, tok) {
			rig.accepted <- m
		}
		return false
	})
	return rig
}

func (g *notifyRig) send(t *testing.T, msg string) {
	t.Helper()
	c, err := net.Dial("unixgram", g.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// expect: the first accepted datagram (if any) is the marked one; the
// marker datagram from the rightful sender is sent last, so everything
// before it was judged already.
func (g *notifyRig) firstAccepted(t *testing.T) notifyMsg {
	t.Helper()
	select {
	case m := <-g.accepted:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("nothing accepted")
		return notifyMsg{}
	}
}

// READY=1 counts only with the token and from the task's PID: this test
// process plays oxios-init (taskPID = our PID) or an impostor (another
// taskPID). Datagrams arrive in order on one socket, so a final good
// one proves the bad ones before it were refused.
func TestNotifyAcceptsOnlyTaskPIDWithToken(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef"
	me := uint32(os.Getpid())
	g := newNotifyRig(t, me, tok)
	g.send(t, "READY=1")                                                  // no token
	g.send(t, "READY=1\nOXIOS_TOKEN=ffffffffffffffffffffffffffffffff")    // wrong token
	g.send(t, "READY=0\nOXIOS_TOKEN="+tok)                                // not ready
	g.send(t, "READY=1\nOXIOS_TOKEN="+tok+strings.Repeat("x", maxNotify)) // oversized
	g.send(t, "STATUS=last\nREADY=1\nOXIOS_TOKEN="+tok)
	m := g.firstAccepted(t)
	if m.pid != int32(me) || m.token != tok {
		t.Fatalf("accepted %+v first, want the last datagram", m)
	}

	other := newNotifyRig(t, me+1, tok) // the task is someone else
	other.send(t, "READY=1\nOXIOS_TOKEN="+tok)
	select {
	case m := <-other.accepted:
		t.Fatalf("accepted a datagram from PID %d for task PID %d", m.pid, me+1)
	case <-time.After(200 * time.Millisecond): // an absence has no event
	}
}

// Where the sender is not visible (pid 0), the token alone decides; a
// container without a token label is judged by the PID alone.
func TestNotifyHiddenSender(t *testing.T) {
	tok := goFuture(func() (string, error) { return "t", nil })
	none := goFuture(func() (string, error) { return "", nil })
	for _, c := range []struct {
		m    notifyMsg
		tok  *future[string]
		want bool
	}{
		{notifyMsg{pid: 0, ready: true, token: "t"}, tok, true},
		{notifyMsg{pid: 0, ready: true, token: "u"}, tok, false},
		{notifyMsg{pid: 0, ready: true}, none, false},
		{notifyMsg{pid: 7, ready: true}, none, true},
		{notifyMsg{pid: 8, ready: true, token: "t"}, tok, false},
	} {
		if got := accepted(c.m, 7, c.tok); got != c.want {
			t.Errorf("accepted(%+v) = %v, want %v", c.m, got, c.want)
		}
	}
}

// A holder that keeps the start lock past the timeout is named: PID and
// command line.
func TestLockTimeoutNamesHolder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	holder := exec.Command(testenv.RequireTool(t, "flock"), p, "sleep", "30")
	if err := holder.Start(); err != nil {
		t.Fatalf("flock(1): %v", err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	// flock(1) records nothing; write the record as oxios would.
	testenv.WaitFor(t, "another process's flock", 5*time.Second, func() bool { return lockedByOther(p) })
	os.WriteFile(p, []byte(strconv.Itoa(holder.Process.Pid)+" flock\n"), 0o600)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t0 := time.Now()
	err = flockWait(f, 300*time.Millisecond)
	var lt *LockTimeoutError
	if !errors.As(err, &lt) {
		t.Fatalf("flockWait = %v, want a LockTimeoutError", err)
	}
	if time.Since(t0) > 5*time.Second {
		t.Fatalf("timed out after %v", time.Since(t0))
	}
	msg := err.Error()
	for _, want := range []string{p, "PID " + strconv.Itoa(holder.Process.Pid), "flock " + p + " sleep 30"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not name %q", msg, want)
		}
	}
}

func lockedByOther(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	return flockWait(f, 0) != nil
}

// An older oxios gave all of RUN_DIR/ID to the container's user and
// mounted it at /run/oxios. Start must recreate such a container (its
// spec hash differs) and must not trust that directory: a link planted
// in it is never followed, and the directory comes back root-only.
func TestOldRunDirLayoutIsReplaced(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	ctx := r.ctx(context.Background())
	first, err := r.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := r.client.LoadContainer(ctx, e.cfg.Container.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctr.SetLabels(ctx, map[string]string{LabelHash: "built-by-an-older-oxios"}); err != nil {
		t.Fatal(err)
	}
	victim := t.TempDir()
	os.Chmod(victim, 0o700)
	priv := r.runDir()
	if err := os.RemoveAll(r.notifyDir()); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, r.notifyDir()); err != nil {
		t.Fatal(err)
	}
	os.Chown(priv, 65532, 65532)
	os.Chmod(priv, 0o750)

	second, err := r.Start(ctx)
	if err != nil || second.Adopted || second.PID == first.PID {
		t.Fatalf("start over an old-layout container: %+v %v", second, err)
	}
	if fi, err := os.Stat(victim); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the link's target changed: %v %v", fi, err)
	}
	if ents, _ := os.ReadDir(victim); len(ents) > 0 {
		t.Errorf("something was created through the planted link: %v", ents)
	}
	fi, err := os.Lstat(priv)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("run dir %s after the start: %v %v, want root's 0700 directory", priv, fi, err)
	}
	if fi, err := os.Lstat(r.notifyDir()); err != nil || !fi.IsDir() {
		t.Errorf("notify dir: %v %v", fi, err)
	}
	if _, err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// oxios-init's health socket counts only when its listener is the task's
// PID 1: a daemon that put its own listener there is refused. This test
// process plays the listener.
func TestSupervisorListenerMustBeTaskPID(t *testing.T) {
	r := fakeSupervisor(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Write([]byte(`{"ready":true}`))
	})})
	me := uint32(os.Getpid())
	if !r.publishedReady(me) {
		t.Fatal("the task's own listener was not trusted")
	}
	if r.publishedReady(me + 1) {
		t.Fatal("a listener that is not the task's PID 1 was trusted")
	}
	if r.publishedReady(0) {
		t.Fatal("strict: an unknown task PID was trusted")
	}
	err := r.supervisorGet(me+1, false, "/status", nil)
	if err == nil || !strings.Contains(err.Error(), "not the task's PID 1") {
		t.Fatalf("status against a foreign listener: %v", err)
	}
}

// An endless answer is cut at the size cap, within the time bound.
func TestSupervisorAnswerBounded(t *testing.T) {
	r := fakeSupervisor(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		chunk := []byte(strings.Repeat(" ", 4096))
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})})
	t0 := time.Now()
	var v map[string]any
	err := r.supervisorGet(uint32(os.Getpid()), true, "/status", &v)
	if err == nil || time.Since(t0) > 3*time.Second {
		t.Fatalf("endless answer: %v after %v", err, time.Since(t0))
	}
}

// Whatever a datagram holds, it is accepted only with READY=1 and the
// token each on a line of their own, from the task's PID.
func FuzzNotifyDatagram(f *testing.F) {
	const tok = "0123456789abcdef0123456789abcdef"
	f.Add([]byte("READY=1\nOXIOS_TOKEN="+tok), int32(7))
	f.Add([]byte("READY=1\nOXIOS_TOKEN="+tok+"x"), int32(7))
	f.Add([]byte("OXIOS_TOKEN="+tok+"\nREADY=1\n"), int32(0))
	f.Add([]byte("READY=1\x00OXIOS_TOKEN="+tok), int32(8))
	want := goFuture(func() (string, error) { return tok, nil })
	f.Fuzz(func(t *testing.T, b []byte, pid int32) {
		oob := unix.UnixCredentials(&unix.Ucred{Pid: pid})
		m, ok := parseNotify(b, oob)
		if !ok || m.pid != pid {
			t.Fatalf("credentials lost: %+v %v", m, ok)
		}
		if !m.ready || !accepted(m, 7, want) {
			return
		}
		lines := "\n" + string(b) + "\n"
		if !strings.Contains(lines, "\nREADY=1\n") || !strings.Contains(lines, "\nOXIOS_TOKEN="+tok+"\n") || (pid != 0 && pid != 7) {
			t.Fatalf("accepted %q from PID %d", b, pid)
		}
	})
}
