package health

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/proctree"
)

// notifyName is an abstract AF_UNIX address ("@" + random): it needs no
// writable directory (the image's root file system is read-only, and the
// run directory is the host's), leaves nothing to clean up, and cannot be
// squatted (unguessable until bound). Anyone in the network namespace can
// send to it, which is why every datagram's sender is checked.
func notifyName() (string, error) {
	var b [12]byte
	if _, err := unix.Getrandom(b[:], 0); err != nil {
		return "", fmt.Errorf("notify socket name: getrandom: %w", err)
	}
	return "@oxios-init-notify-" + hex.EncodeToString(b[:]), nil
}

// notifySocket receives the daemon's datagrams on the address chosen by
// PrepareNotify.
type notifySocket struct {
	addr string
	st   *notifyState
	conn *net.UnixConn
	done chan struct{}
}

func newNotifySocket(addr string, st *notifyState) *notifySocket {
	return &notifySocket{addr: addr, st: st}
}

// open binds the socket with SO_PASSCRED (every datagram then carries its
// sender's credentials, translated into our PID namespace: a sender from
// outside it shows as PID 0) and starts reading.
func (n *notifySocket) open() error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("notify socket %s: %w", n.addr, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		unix.Close(fd)
		return fmt.Errorf("notify socket %s: SO_PASSCRED: %w", n.addr, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: n.addr}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("notify socket %s: bind: %w", n.addr, err)
	}
	f := os.NewFile(uintptr(fd), "notify")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("notify socket %s: %w", n.addr, err)
	}
	n.conn = c.(*net.UnixConn)
	n.done = make(chan struct{})
	go n.serve()
	n.st.log.WithField("addr", n.addr).Debug("notify socket for the daemon listening")
	return nil
}

// serve reads datagrams until the socket closes; waiting costs nothing
// (the runtime's netpoller).
func (n *notifySocket) serve() {
	defer close(n.done)
	buf := make([]byte, notifyMax+1) // one byte more: an oversized datagram shows
	// Room for the credentials and for descriptors a sender might attach
	// (FDSTORE=1): they are closed, never kept.
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(253*4))
	for {
		nb, noob, flags, _, err := n.conn.ReadMsgUnix(buf, oob)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			n.st.refuse("receive error: "+err.Error(), 0)
			continue
		}
		n.handle(buf[:nb], oob[:noob], flags)
	}
}

// handle checks one datagram and hands it to the state.
func (n *notifySocket) handle(b, oob []byte, flags int) {
	pid := -1
	if cmsgs, err := unix.ParseSocketControlMessage(oob); err == nil {
		for _, c := range cmsgs {
			if fds, err := unix.ParseUnixRights(&c); err == nil {
				for _, fd := range fds {
					unix.Close(fd)
				}
			}
			if cred, err := unix.ParseUnixCredentials(&c); err == nil {
				pid = int(cred.Pid)
			}
		}
	}
	switch {
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || len(b) > notifyMax:
		n.st.refuse("oversized datagram", pid)
		return
	case pid <= 0:
		n.st.refuse("no credentials, or a sender outside the PID namespace", pid)
		return
	}
	m, ok := parseNotify(b)
	if !ok {
		n.st.refuse("malformed datagram", pid)
		return
	}
	m.pid = pid
	n.st.receive(m)
}

func (n *notifySocket) Close() error {
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	<-n.done
	return err
}

// inProcessTree reports whether pid is root or one of its descendants,
// by its ancestry in /proc (a process that double-forked away from the
// tree and was reparented is not in it, as for listen://).
func inProcessTree(root, pid int) bool {
	for i := 0; i < 256 && pid > 1; i++ {
		if pid == root {
			return true
		}
		ppid, ok := proctree.Parent(pid)
		if !ok {
			return false
		}
		pid = ppid
	}
	return pid == root
}
