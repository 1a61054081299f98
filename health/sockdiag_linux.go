package health

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockDiag asks the kernel for LISTEN sockets through NETLINK_SOCK_DIAG,
// as `ss -ltn` does. It keeps one netlink socket and one receive buffer for
// its whole life: a probe that runs every few milliseconds while the daemon
// starts must not open sockets or allocate per run. (vishvananda/netlink's
// SocketDiagTCP dumps every TCP socket in every state, opens a netlink
// socket per call and allocates per socket; the tests cross-check this
// parser against it.)
type sockDiag struct {
	fd   int
	seq  uint32
	req  [nlmsgHdrLen + inetDiagReqLen]byte // dump of LISTEN sockets
	look [nlmsgHdrLen + inetDiagReqLen]byte // exact lookup of one address
	buf  []byte
	rest []byte // unread part of buf from the last read
}

const (
	nlmsgHdrLen       = 16
	inetDiagReqLen    = 56
	inetDiagMsgLen    = 72
	sockDiagByFamily  = 20 // SOCK_DIAG_BY_FAMILY
	tcpListenState    = 10 // TCP_LISTEN
	sockDiagRecvBytes = 32 << 10
)

// listener is one LISTEN socket as the kernel reports it.
type listener struct {
	addr   netip.Addr
	port   uint16
	inode  uint32
	queued uint32 // accept queue length (sk_ack_backlog)
	max    uint32 // backlog (sk_max_ack_backlog)
	hasMax bool   // /proc/net/tcp does not report the backlog
}

// full reports whether the kernel drops new SYNs for this listener
// (sk_acceptq_is_full: ack_backlog > max_ack_backlog).
func (l listener) full() bool { return l.hasMax && l.queued > l.max }

var errSockDiagUnavailable = errors.New("sock_diag netlink unavailable")

func newSockDiag() (*sockDiag, error) {
	// Non-blocking: replies are read with raw system calls (rawRead), which
	// must not block; the kernel queues them while it handles the request.
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("%w: socket(AF_NETLINK, NETLINK_SOCK_DIAG): %v", errSockDiagUnavailable, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: bind: %v", errSockDiagUnavailable, err)
	}
	d := &sockDiag{fd: fd, buf: make([]byte, sockDiagRecvBytes)}
	ne := binary.NativeEndian
	ne.PutUint32(d.req[0:], uint32(len(d.req)))
	ne.PutUint16(d.req[4:], sockDiagByFamily)
	ne.PutUint16(d.req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	d.req[nlmsgHdrLen+1] = unix.IPPROTO_TCP
	// Only LISTEN sockets: the kernel filters, so the daemon's open
	// connections never cross into user space.
	ne.PutUint32(d.req[nlmsgHdrLen+4:], 1<<tcpListenState)

	// The exact request: no NLM_F_DUMP, and the cookie set to
	// INET_DIAG_NOCOOKIE so that the kernel matches by address alone.
	ne.PutUint32(d.look[0:], uint32(len(d.look)))
	ne.PutUint16(d.look[4:], sockDiagByFamily)
	ne.PutUint16(d.look[6:], unix.NLM_F_REQUEST)
	d.look[nlmsgHdrLen+1] = unix.IPPROTO_TCP
	ne.PutUint32(d.look[nlmsgHdrLen+4:], 1<<tcpListenState)
	ne.PutUint32(d.look[nlmsgHdrLen+8+40:], ^uint32(0)) // idiag_cookie[0]
	ne.PutUint32(d.look[nlmsgHdrLen+8+44:], ^uint32(0)) // idiag_cookie[1]

	// An exact lookup answers ENOENT both for "no such socket" and for "no
	// tcp_diag in this kernel"; one dump up front tells them apart.
	if _, err := d.listeners(unix.AF_INET, nil); err != nil {
		d.Close()
		return nil, fmt.Errorf("%w: %v", errSockDiagUnavailable, err)
	}
	return d, nil
}

// lookup asks the kernel which socket would take a connection to addr:port
// (inet_diag's exact request runs the same socket lookup as an incoming
// SYN, so a wildcard or dual-stack listener is found too). It costs one
// round trip and a hash lookup in the kernel, where a dump walks the whole
// listening hash table (up to 64 Ki buckets, ~0.1 ms per family).
func (d *sockDiag) lookup(addr netip.Addr, port uint16) (l listener, found bool, err error) {
	id := d.look[nlmsgHdrLen+8:]
	binary.BigEndian.PutUint16(id[0:], port) // idiag_sport
	clear(id[4:36])                          // src, dst
	if addr.Is4() {
		d.look[nlmsgHdrLen] = unix.AF_INET
		a := addr.As4()
		copy(id[4:], a[:])
	} else {
		d.look[nlmsgHdrLen] = unix.AF_INET6
		a := addr.As16()
		copy(id[4:], a[:])
	}
	if err := d.send(d.look[:]); err != nil {
		return l, false, err
	}
	for {
		typ, msg, err := d.reply()
		if err != nil {
			return l, false, err
		}
		switch typ {
		case unix.NLMSG_ERROR:
			if len(msg) >= 4 {
				switch e := unix.Errno(-int32(binary.NativeEndian.Uint32(msg))); e {
				case 0, unix.ENOENT:
					return l, false, nil // nothing would accept
				default:
					return l, false, fmt.Errorf("sock_diag lookup: %w", e)
				}
			}
			return l, false, nil
		case sockDiagByFamily:
			l, ok := parseInetDiagMsg(msg)
			return l, ok, nil // ok is false for a non-LISTEN socket
		}
	}
}

func (d *sockDiag) Close() error { return unix.Close(d.fd) }

// listeners appends the LISTEN sockets of family (AF_INET or AF_INET6) to
// out and returns it.
func (d *sockDiag) listeners(family uint8, out []listener) ([]listener, error) {
	d.req[nlmsgHdrLen] = family
	if err := d.send(d.req[:]); err != nil {
		return out, err
	}
	for {
		typ, msg, err := d.reply()
		if err != nil {
			return out, err
		}
		switch typ {
		case unix.NLMSG_DONE:
			return out, nil
		case unix.NLMSG_ERROR:
			if len(msg) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(msg)); e != 0 {
					return out, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
				}
			}
			return out, nil
		case sockDiagByFamily:
			if l, ok := parseInetDiagMsg(msg); ok {
				out = append(out, l)
			}
		}
	}
}

// send stamps req with a new sequence number and writes it. Replies still
// unread belong to an earlier, abandoned request: they are dropped.
func (d *sockDiag) send(req []byte) error {
	d.seq++
	binary.NativeEndian.PutUint32(req[8:], d.seq)
	d.rest = nil
	if e := rawWrite(d.fd, req); e != 0 {
		return fmt.Errorf("sock_diag send: %w", e)
	}
	return nil
}

// reply returns the next message answering the last request sent, reading
// the socket as needed; replies to earlier requests are skipped. msg
// aliases the receive buffer until the next call.
func (d *sockDiag) reply() (typ uint16, msg []byte, err error) {
	ne := binary.NativeEndian
	for {
		for len(d.rest) >= nlmsgHdrLen {
			b := d.rest
			mlen := int(ne.Uint32(b[0:]))
			if mlen < nlmsgHdrLen || mlen > len(b) {
				d.rest = nil
				return 0, nil, errors.New("sock_diag: truncated message")
			}
			typ, seq := ne.Uint16(b[4:]), ne.Uint32(b[8:])
			d.rest = b[min(nlmAlign(mlen), len(b)):]
			if seq == d.seq {
				return typ, b[nlmsgHdrLen:mlen], nil
			}
		}
		n, err := d.read()
		if err != nil {
			return 0, nil, fmt.Errorf("sock_diag receive: %w", err)
		}
		d.rest = d.buf[:n]
	}
}

// read reads the next batch of replies: at once when the kernel has
// queued it (the usual case, see newSockDiag), else after a blocking wait.
func (d *sockDiag) read() (int, error) {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(d.fd), uintptr(unsafe.Pointer(&d.buf[0])), uintptr(len(d.buf)))
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
		case unix.EAGAIN:
			fds := []unix.PollFd{{Fd: int32(d.fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
				return 0, err
			}
		default:
			return 0, e
		}
	}
}

func nlmAlign(n int) int { return (n + 3) &^ 3 }

func parseInetDiagMsg(m []byte) (listener, bool) {
	if len(m) < inetDiagMsgLen || m[1] != tcpListenState {
		return listener{}, false
	}
	ne := binary.NativeEndian
	var a netip.Addr
	switch m[0] {
	case unix.AF_INET:
		a = netip.AddrFrom4([4]byte(m[8:12]))
	case unix.AF_INET6:
		a = netip.AddrFrom16([16]byte(m[8:24]))
	default:
		return listener{}, false
	}
	return listener{
		addr:   a,
		port:   binary.BigEndian.Uint16(m[4:6]),
		queued: ne.Uint32(m[56:]),
		max:    ne.Uint32(m[60:]),
		inode:  ne.Uint32(m[68:]),
		hasMax: true,
	}, true
}
