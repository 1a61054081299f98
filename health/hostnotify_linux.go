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
// change, and again every heartbeatPeriod while ready, so that a host
// attaching to a task that is already running (it binds its socket only
// while it waits) hears READY=1 without a new start-up. While not ready
// there is nothing to repeat: a waiting host needs only READY=1, which
// the change sends at once, and oxios-init does not wake up for nothing
// while the daemon starts. Sends never block: a host that is not
// listening just misses them.
type hostNotifier struct {
	mu      sync.Mutex // fd is -1 once closed
	fd      int
	addr    unix.SockaddrUnix
	token   string
	stop    chan struct{}
	readyCh chan struct{} // a READY=1 was sent: the heartbeat resumes
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
	return &hostNotifier{fd: fd, addr: unix.SockaddrUnix{Name: addr}, token: token,
		stop: make(chan struct{}), readyCh: make(chan struct{}, 1)}
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
	if ready {
		select {
		case h.readyCh <- struct{}{}:
		default:
		}
	}
}

// beat sends the state every heartbeatPeriod while ready() until close.
func (h *hostNotifier) beat(ready func() bool) {
	if h == nil {
		return
	}
	t := time.NewTimer(heartbeatPeriod)
	defer t.Stop()
	for {
		if !ready() {
			t.Stop()
			select {
			case <-h.stop:
				return
			case <-h.readyCh:
			}
			t.Reset(heartbeatPeriod)
			continue
		}
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.send(ready())
			t.Reset(heartbeatPeriod)
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
