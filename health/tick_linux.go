package health

import (
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pollTicker paces a poll that may run for seconds (a daemon that has not
// listened yet, or answers 503 while it loads) from a timerfd read through
// the runtime's netpoller instead of a Go timer. A Go timer's wake-up also
// wakes the runtime's sysmon thread, which then spins in short sleeps, and
// splits each wait into a millisecond-rounded epoll wait plus a remainder:
// several wake-ups of oxios-init for every poll, in a process whose CPU
// while it waits is the point. A timerfd tick is one wake-up, and nothing
// else in oxios-init keeps a timer while the daemon starts.
//
// The read is a raw system call (see rawRead), so that a tick wakes
// oxios-init's one running thread and nothing else.
//
// A tick nobody took (C still full) disarms the timerfd: the poll ended
// (first success, a new child, the startup budget) without telling the
// ticker, and arm starts it again when a poll wants it.
type pollTicker struct {
	C chan struct{}

	mu     sync.Mutex // fd, every, closed
	f      *os.File   // read through the netpoller
	fd     int        // f's descriptor (f.Fd would make f blocking)
	every  time.Duration
	armed  atomic.Bool
	closed bool
}

// newPollTicker is a stopped ticker, or nil when the kernel has no timerfd
// (the caller then keeps its Go timer).
func newPollTicker() *pollTicker {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil
	}
	t := &pollTicker{C: make(chan struct{}, 1), f: os.NewFile(uintptr(fd), "timerfd"), fd: fd}
	go t.loop(t.f)
	return t
}

func (t *pollTicker) loop(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	var b [8]byte
	expired := func(fd uintptr) bool { return rawRead(int(fd), b[:]) != unix.EAGAIN }
	for {
		if rc.Read(expired) != nil {
			return // closed
		}
		select {
		case t.C <- struct{}{}:
		default:
			t.disarm()
		}
	}
}

// arm makes C tick every d from now on; it costs a system call only when
// the ticker is stopped or d changes.
func (t *pollTicker) arm(d time.Duration) {
	if t.armed.Load() {
		t.mu.Lock()
		same := t.every == d
		t.mu.Unlock()
		if same {
			return
		}
	}
	t.set(d)
}

func (t *pollTicker) disarm() { t.set(0) }

func (t *pollTicker) set(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	ts := unix.NsecToTimespec(int64(d))
	spec := unix.ItimerSpec{Interval: ts, Value: ts}
	if err := unix.TimerfdSettime(t.fd, 0, &spec, nil); err != nil {
		return
	}
	t.every = d
	t.armed.Store(d > 0)
}

func (t *pollTicker) Close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	t.armed.Store(false)
	return t.f.Close()
}

// rawRead is read(2) without the runtime's system call bookkeeping, for a
// descriptor that never blocks (O_NONBLOCK, or an answer already queued):
// the bookkeeping wakes the runtime's sysmon thread on every call, which
// then spins in short sleeps, several wake-ups for one read.
func rawRead(fd int, b []byte) unix.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return e
}

// rawWrite is write(2) as rawRead is read(2).
func rawWrite(fd int, b []byte) unix.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return e
}
