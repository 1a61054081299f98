package health

import (
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// The host hears the state with the token at once on send, and again on
// every heartbeat until close; nothing is sent without a token.
func TestHostNotifierSendsStateWithToken(t *testing.T) {
	c := listenHostNotify(t)
	if newHostNotifier("") != nil {
		t.Fatal("a notifier without a token")
	}
	h := newHostNotifier("tok")
	h.send(false)
	go h.beat(func() bool { return true })
	want := []string{"READY=0\nSTATUS=not ready\nOXIOS_TOKEN=tok", "READY=1\nSTATUS=ready\nOXIOS_TOKEN=tok", "READY=1\nSTATUS=ready\nOXIOS_TOKEN=tok"}
	buf := make([]byte, 512)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i, w := range want {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if got := string(buf[:n]); got != w {
			t.Fatalf("datagram %d = %q, want %q", i, got, w)
		}
	}
	h.close()
	h.send(true) // after close: nothing, and no panic
	// At most one heartbeat was in flight when close ran; an absence has
	// no event, so a window of two periods is what is under test.
	c.SetReadDeadline(time.Now().Add(2 * heartbeatPeriod))
	late := 0
	for ; ; late++ {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	if late > 1 {
		t.Fatalf("%d datagrams after close", late)
	}
}

// While the daemon is not ready the heartbeat is silent (oxios-init does
// not wake up for it while the daemon starts); the READY=1 of the change
// resumes it.
func TestHostNotifierHeartbeatOnlyWhileReady(t *testing.T) {
	c := listenHostNotify(t)
	h := newHostNotifier("tok")
	defer h.close()
	var ready atomic.Bool
	go h.beat(ready.Load)
	buf := make([]byte, 512)
	// An absence has no event: two periods are the window under test.
	c.SetReadDeadline(time.Now().Add(2 * heartbeatPeriod))
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("heartbeat while not ready: %q", buf[:n])
	}
	ready.Store(true)
	h.send(true)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < 2; i++ { // the change, then a heartbeat
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d after READY=1: %v", i, err)
		}
		if got := string(buf[:n]); got != "READY=1\nSTATUS=ready\nOXIOS_TOKEN=tok" {
			t.Fatalf("datagram %d = %q", i, got)
		}
	}
}

// listenHostNotify listens where the host would (a datagram socket in a
// temp dir, short enough for sun_path) and points NOTIFY_SOCKET at it.
func listenHostNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	dir, err := os.MkdirTemp("", "hn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "n.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", sock)
	return c
}
