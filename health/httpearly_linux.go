package health

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// earlyHTTP is a gated http:// probe's attempt while the port listens but
// the daemon has not answered 2xx/3xx yet (a daemon loading its state
// behind a 503): one connection kept alive across attempts, each a GET
// written and a response read with raw system calls (see rawRead),
// instead of a connection per attempt, as the kubelet's rules ask after
// the first success. A daemon that keeps connections alive (HTTP/1.1's
// default) then costs oxios-init one write and one read an attempt, and
// sees one connection however long it loads.
//
// A response it cannot frame without reading to the end (no
// Content-Length: chunked, or close-delimited) is judged by its status,
// and the attempts after it are the plain ones (ok false) for the rest of
// the child's wait; so are attempts that overlap (Query and the runner).
type earlyHTTP struct {
	url *httpProber
	req []byte

	mu   sync.Mutex // Query and the runner may probe at once
	conn net.Conn   // kept alive; nil: none
	rc   syscall.RawConn
	br   *bufio.Reader
	off  bool // the daemon's responses cannot be framed: plain attempts
}

func newEarlyHTTP(p *httpProber) *earlyHTTP {
	u := p.url
	if u.Scheme != "http" {
		return nil
	}
	// HTTP/1.1 keeps the connection unless either side says close.
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: " + userAgent + "\r\nAccept: */*\r\n\r\n"
	return &earlyHTTP{url: p, req: []byte(req)}
}

// probe is one attempt; ok is false when the plain attempt must decide.
func (e *earlyHTTP) probe(ctx context.Context, deadline time.Time) (res Result, ok bool) {
	if !e.mu.TryLock() {
		return Result{}, false // another attempt has the connection
	}
	defer e.mu.Unlock()
	if e.off {
		return Result{}, false
	}
	u := e.url.url
	for {
		fresh := e.conn == nil
		if fresh {
			if err := e.dial(ctx, deadline); err != nil {
				return getFailed(ctx, u, 0, err), true
			}
		}
		r, close, err := e.roundTrip(ctx, deadline)
		if err == nil {
			return e.verdict(ctx, deadline, r, close), true
		}
		e.reset()
		if r.code != 0 || fresh || ctx.Err() != nil || !time.Now().Before(deadline) {
			return getFailed(ctx, u, r.code, err), true
		}
		// The daemon closed the kept connection since the last attempt
		// (an idle timeout) before answering: once more, on a new one.
	}
}

func (e *earlyHTTP) dial(ctx context.Context, deadline time.Time) error {
	d := net.Dialer{Deadline: deadline}
	c, err := d.DialContext(ctx, "tcp", hostPort(e.url.url))
	if err != nil {
		return err
	}
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		c.Close()
		return err
	}
	e.conn, e.rc = c, rc
	if e.br == nil {
		e.br = bufio.NewReaderSize(rawConnReader{e}, 4096)
	} else {
		e.br.Reset(rawConnReader{e})
	}
	return nil
}

// roundTrip writes the GET and reads the response: the head, and a body
// with a Content-Length up to maxBody is read and dropped, leaving the
// connection at the next response. Other bodies are read as the plain
// attempt reads them (see earlyHTTP), except a chunked one, which would
// need decoding to find its end: the status decides alone there.
func (e *earlyHTTP) roundTrip(ctx context.Context, deadline time.Time) (httpResponse, bool, error) {
	c := e.conn
	c.SetDeadline(deadline)
	// Cancellation (a stop, a new child) interrupts the wait for the
	// answer by expiring the deadline, as in httpGet.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if stop() {
			c.SetDeadline(time.Time{})
		}
	}()
	if err := e.write(); err != nil {
		return httpResponse{}, false, err
	}
	h, err := readHead(e.br)
	if err != nil {
		return httpResponse{}, false, err
	}
	r := httpResponse{code: h.code, location: h.location}
	switch {
	case !h.hasBody():
	case h.length >= 0 && h.length <= maxBody:
		_, err = e.br.Discard(int(h.length))
	case h.chunked:
		e.off = true
	default:
		e.off = true
		r, err = readBody(e.br, h)
	}
	return r, h.close, err
}

// verdict: the status decides, as for the plain attempt; a redirect is
// followed by plain requests.
func (e *earlyHTTP) verdict(ctx context.Context, deadline time.Time, r httpResponse, close bool) Result {
	if close || e.off || e.br.Buffered() > 0 {
		e.reset() // nothing more may be read from it as the next response
	}
	next, res := e.url.redirect(e.url.url, 1, r)
	if next != nil {
		return e.url.probeFrom(ctx, deadline, next, 2)
	}
	return res
}

// write sends the request with MSG_NOSIGNAL: a write(2) to a connection
// the daemon reset would raise SIGPIPE, which oxios-init catches to
// forward, and the daemon would get it.
func (e *earlyHTTP) write() error {
	b := e.req
	var werr error
	err := e.rc.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			n, _, en := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
			switch en {
			case 0:
				b = b[n:]
			case unix.EAGAIN:
				return false
			case unix.EINTR:
			default:
				werr = en
				return true
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return werr
}

// reset closes the kept connection.
func (e *earlyHTTP) reset() {
	if e.conn != nil {
		e.conn.Close()
		e.conn, e.rc = nil, nil
	}
}

// end releases the connection and forgets the child: the next one starts
// kept-alive again.
func (e *earlyHTTP) end() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reset()
	e.off = false
}

// rawConnReader reads e's connection with raw reads, waiting in the
// netpoller (under the connection's deadline) while nothing is there.
type rawConnReader struct{ e *earlyHTTP }

func (r rawConnReader) Read(b []byte) (int, error) {
	if r.e.rc == nil {
		return 0, net.ErrClosed
	}
	var n int
	var rerr error
	err := r.e.rc.Read(func(fd uintptr) bool {
		for {
			m, _, en := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch en {
			case 0:
				n = int(m)
				return true
			case unix.EAGAIN:
				return false
			case unix.EINTR:
			default:
				rerr = en
				return true
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
