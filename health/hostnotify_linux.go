package health

import (
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/runtime/contract"
)

// hostNotifier reports the monitor's readiness to the host that started
// oxios-init (NOTIFY_SOCKET, with Config.NotifyToken): at once on every
// change, and again every heartbeatPeriod, so that a host attaching to a
// task that is already running (it binds its socket only while it waits)
// hears the current state without a new start-up. Sends never block: a
// host that is not listening just misses them.
type hostNotifier struct {
	mu    sync.Mutex // fd is -1 once closed
	fd    int
	addr  unix.SockaddrUnix
	token string
	stop  chan struct{}
}

// tokenField names the token in a notification, as the host reads it.
const tokenField = contract.NotifyTokenField

// heartbeatPeriod bounds how long an attaching host waits for the state.
const heartbeatPeriod = 250 * time.Millisecond

// newHostNotifier is nil unless a token and NOTIFY_SOCKET are both set.
func newHostNotifier(token string) *hostNotifier {
	addr := os.Getenv("NOTIFY_SOCKET")
	if token == "" || addr == "" {
		return nil
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:] // abstract namespace, as sd_notify(3)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return &hostNotifier{fd: fd, addr: unix.SockaddrUnix{Name: addr}, token: token, stop: make(chan struct{})}
}

func (h *hostNotifier) send(ready bool) {
	if h == nil {
		return
	}
	state := "READY=0\nSTATUS=not ready"
	if ready {
		state = "READY=1\nSTATUS=ready"
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd >= 0 {
		unix.Sendto(h.fd, []byte(state+"\n"+tokenField+"="+h.token), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, &h.addr)
	}
}

// beat sends ready() every heartbeatPeriod until close.
func (h *hostNotifier) beat(ready func() bool) {
	if h == nil {
		return
	}
	t := time.NewTicker(heartbeatPeriod)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.send(ready())
		}
	}
}

func (h *hostNotifier) close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd >= 0 {
		close(h.stop)
		unix.Close(h.fd)
		h.fd = -1
	}
}
