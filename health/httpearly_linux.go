package health

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
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

	// The context whose cancellation expires conn's deadline (see
	// watch), and how to stop that.
	watched   context.Context
	unwatch   func() bool
	cancelled *atomic.Bool // watched was cancelled: conn is expired

	// An attempt allocates nothing (a response every few milliseconds
	// while a daemon loads would otherwise keep PID 1's collector busy):
	// the raw read and write functions are made once, and take their
	// buffer and return their result through these fields.
	readFn, writeFn func(fd uintptr) bool
	ioBuf           []byte
	ioN             int
	ioErr           unix.Errno

	lastCode   int // the status last judged, and its result
	lastResult Result
}

func newEarlyHTTP(p *httpProber) *earlyHTTP {
	u := p.url
	if u.Scheme != "http" {
		return nil
	}
	// HTTP/1.1 keeps the connection unless either side says close.
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: " + userAgent + "\r\nAccept: */*\r\n\r\n"
	e := &earlyHTTP{url: p, req: []byte(req)}
	e.readFn, e.writeFn = e.rawRead, e.rawWrite
	return e
}

// probe is one attempt; ok is false when the plain attempt must decide.
func (e *earlyHTTP) probe(ctx context.Context, deadline time.Time) (res Result, ok bool) {
	return e.attempt(ctx, deadline, true)
}

// probeKept is an attempt on the kept connection alone, the gate not asked:
// that connection was made once the gate saw the tree's listener, and
// what answers on it is the socket the daemon accepted, so a lookup of
// the listener before each request tells nothing new (and was the
// costliest part of an attempt after the HTTP exchange). ok is false when
// there is no kept connection or the daemon closed it before answering:
// then the gate looks again before anything connects.
func (e *earlyHTTP) probeKept(ctx context.Context, deadline time.Time) (res Result, ok bool) {
	return e.attempt(ctx, deadline, false)
}

// attempt is probe (dial: connect when nothing is kept) or probeKept.
func (e *earlyHTTP) attempt(ctx context.Context, deadline time.Time, dial bool) (res Result, ok bool) {
	if !e.mu.TryLock() {
		return Result{}, false // another attempt has the connection
	}
	defer e.mu.Unlock()
	if e.off || (!dial && e.conn == nil) {
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
		if !dial {
			return Result{}, false
		}
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
	if err := e.watch(ctx, deadline); err != nil {
		return httpResponse{}, false, err
	}
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

// watch bounds the attempt by deadline and by ctx: cancellation (a stop,
// a new child) interrupts the wait for the answer by expiring the
// connection's deadline, as in httpGet. The runner probes with one
// context for a child's whole wait, so that is arranged once per
// connection, not per attempt (context.AfterFunc allocates, and
// registers with and unregisters from the parent each time).
func (e *earlyHTTP) watch(ctx context.Context, deadline time.Time) error {
	if ctx != e.watched {
		e.unwatchCtx()
		// Its own flag: a late run of an earlier registration's
		// function cannot mark this one cancelled.
		c, cancelled := e.conn, new(atomic.Bool)
		e.watched, e.cancelled = ctx, cancelled
		e.unwatch = context.AfterFunc(ctx, func() {
			cancelled.Store(true)
			c.SetDeadline(time.Unix(1, 0))
		})
	}
	e.conn.SetDeadline(deadline)
	// Cancelled before that deadline was set: the AfterFunc's expiry
	// may have come first, and this attempt would wait out the deadline.
	// Cancelled after it: the expiry comes after it.
	if e.cancelled.Load() {
		return context.Canceled
	}
	return nil
}

func (e *earlyHTTP) unwatchCtx() {
	if e.unwatch != nil {
		e.unwatch()
	}
	e.watched, e.unwatch, e.cancelled = nil, nil, nil
}

// verdict: the status decides, as for the plain attempt; a redirect is
// followed by plain requests. The result of a status is kept for the
// next response with the same one, so that a 503 every few
// milliseconds does not build the same detail each time.
func (e *earlyHTTP) verdict(ctx context.Context, deadline time.Time, r httpResponse, close bool) Result {
	if close || e.off || e.br.Buffered() > 0 {
		e.reset() // nothing more may be read from it as the next response
	}
	if r.code == e.lastCode && !r.truncated && !isRedirect(r.code) {
		return e.lastResult
	}
	next, res := e.url.redirect(e.url.url, 1, r)
	if next != nil {
		return e.url.probeFrom(ctx, deadline, next, 2)
	}
	if !r.truncated {
		e.lastCode, e.lastResult = r.code, res
	}
	return res
}

// write sends the request with MSG_NOSIGNAL: a write(2) to a connection
// the daemon reset would raise SIGPIPE, which oxios-init catches to
// forward, and the daemon would get it.
func (e *earlyHTTP) write() error {
	e.ioBuf, e.ioErr = e.req, 0
	if err := e.rc.Write(e.writeFn); err != nil {
		return err
	}
	if e.ioErr != 0 {
		return e.ioErr
	}
	return nil
}

// rawWrite is write's function for rc.Write: it sends e.ioBuf.
func (e *earlyHTTP) rawWrite(fd uintptr) bool {
	for b := e.ioBuf; len(b) > 0; b = e.ioBuf {
		n, _, en := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
		switch en {
		case 0:
			e.ioBuf = b[n:]
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			e.ioErr = en
			return true
		}
	}
	return true
}

// reset closes the kept connection.
func (e *earlyHTTP) reset() {
	e.unwatchCtx()
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
	e := r.e
	if e.rc == nil {
		return 0, net.ErrClosed
	}
	e.ioBuf, e.ioN, e.ioErr = b, 0, 0
	err := e.rc.Read(e.readFn)
	e.ioBuf = nil
	switch {
	case err != nil:
		return 0, err
	case e.ioErr != 0:
		return 0, e.ioErr
	case e.ioN == 0:
		return 0, io.EOF
	}
	return e.ioN, nil
}

// rawRead is Read's function for rc.Read: it reads into e.ioBuf.
func (e *earlyHTTP) rawRead(fd uintptr) bool {
	b := e.ioBuf
	for {
		m, _, en := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch en {
		case 0:
			e.ioN = int(m)
			return true
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			e.ioErr = en
			return true
		}
	}
}
