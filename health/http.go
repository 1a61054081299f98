package health

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"
)

const (
	// maxRedirects and maxBody are the kubelet's limits.
	maxRedirects = 10
	maxBody      = 10 << 10
	// maxHeader bounds a response's status line and headers.
	maxHeader = 64 << 10
	userAgent = "oxios-init-probe/1"
)

// httpProber GETs a URL: 200-399 is success; redirects are followed only to
// the same host (a redirect elsewhere is returned as is, like the kubelet
// without followNonLocalRedirects); at most maxBody bytes of body are read;
// certificates are not verified, as the kubelet does not.
//
// HTTP/1.1 is spoken by hand (one request per connection, Connection:
// close) rather than through net/http: linking net/http costs oxios-init
// more than a megabyte of resident memory, and a probe needs a status
// line, two headers and a bounded body.
type httpProber struct {
	url *url.URL
}

func newHTTPProber(raw string) *httpProber {
	u, err := url.Parse(raw)
	if err != nil { // ParseSpec accepted it; cannot happen
		panic(err)
	}
	return &httpProber{url: u}
}

func (*httpProber) quickRetry() (hold, limit time.Duration) { return earlyWindow, 0 }

func (p *httpProber) Probe(ctx context.Context, deadline time.Time) Result {
	return p.probeFrom(ctx, deadline, p.url, 1)
}

// probeFrom GETs u, the probe's n-th request, and follows redirects.
func (p *httpProber) probeFrom(ctx context.Context, deadline time.Time, u *url.URL, n int) Result {
	for ; ; n++ {
		resp, err := httpGet(ctx, "tcp", hostPort(u), u, deadline)
		if err != nil {
			return getFailed(ctx, u, resp.code, err)
		}
		next, res := p.redirect(u, n, resp)
		if next == nil {
			return res
		}
		u = next
	}
}

// getFailed is the result of a GET of u that failed: code is the
// response's when its body failed, else 0.
func getFailed(ctx context.Context, u *url.URL, code int, err error) Result {
	if ctx.Err() != nil {
		return Result{Unknown, "cancelled"}
	}
	if code != 0 {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return Result{Failure, "HTTP " + strconv.Itoa(code) + ": body read timed out"}
		}
		return Result{Failure, "HTTP " + strconv.Itoa(code) + ": body read: " + err.Error()}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return Result{Failure, "GET " + u.String() + ": timeout"}
	}
	return Result{Failure, "GET " + u.String() + ": " + err.Error()}
}

// redirect returns the URL to GET next when resp, the n-th response (to
// u), is a redirect to follow; else nil and the probe's result.
func (p *httpProber) redirect(u *url.URL, n int, resp httpResponse) (*url.URL, Result) {
	if !isRedirect(resp.code) || resp.location == "" {
		return nil, httpVerdict(resp, "")
	}
	next, err := u.Parse(resp.location)
	if err != nil {
		return nil, Result{Failure, "HTTP " + strconv.Itoa(resp.code) + ": bad Location " + strconv.Quote(resp.location)}
	}
	if next.Hostname() != p.url.Hostname() || (next.Scheme != "http" && next.Scheme != "https") {
		return nil, httpVerdict(resp, " (redirect to "+resp.location+" not followed: other host)")
	}
	if n >= maxRedirects {
		return nil, Result{Failure, "GET " + p.url.String() + ": stopped after " + strconv.Itoa(maxRedirects) + " redirects"}
	}
	return next, Result{}
}

func isRedirect(code int) bool {
	switch code {
	case 301, 302, 303, 307, 308:
		return true
	}
	return false
}

func httpVerdict(r httpResponse, note string) Result {
	d := "HTTP " + strconv.Itoa(r.code)
	if r.truncated {
		d += " (body truncated at 10 KiB)"
	}
	d += note
	if r.code >= 200 && r.code < 400 {
		return Result{Success, d}
	}
	return Result{Failure, d}
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), hostPortOnly(u))
}

// hostPortOnly is u's port, or the scheme's default.
func hostPortOnly(u *url.URL) string {
	switch {
	case u.Port() != "":
		return u.Port()
	case u.Scheme == "https":
		return "443"
	}
	return "80"
}

// httpResponse is what a probe needs of a response.
type httpResponse struct {
	code      int
	location  string
	body      []byte // at most maxBody bytes
	truncated bool
}

// httpGet sends one GET for u over a new connection to network/addr and
// reads the status, the headers and at most maxBody bytes of body, all
// before deadline. A non-zero code with an error means the body failed.
func httpGet(ctx context.Context, network, addr string, u *url.URL, deadline time.Time) (httpResponse, error) {
	var r httpResponse
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	// Cancellation interrupts reads and writes by expiring the deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	conn.SetDeadline(deadline)
	if u.Scheme == "https" {
		if clientTLS == nil { // a redirect to https:// in a build without it
			return r, ErrNoHTTPS
		}
		tc, err := clientTLS(conn, u.Hostname())
		if err != nil {
			return r, err
		}
		conn = tc
	}
	host := u.Host
	if _, err := io.WriteString(conn, "GET "+u.RequestURI()+" HTTP/1.1\r\nHost: "+host+
		"\r\nUser-Agent: "+userAgent+"\r\nAccept: */*\r\nConnection: close\r\n\r\n"); err != nil {
		return r, err
	}
	br := readers.Get().(*bufio.Reader)
	defer readers.Put(br)
	br.Reset(io.LimitReader(conn, maxHeader+maxBody))
	defer br.Reset(nil) // the pool must not keep the connection
	return readResponse(br)
}

// readers are httpGet's response readers, kept between probes: a probe
// every period would otherwise leave a 4 KiB buffer behind each time,
// and PID 1's heap grows by what it leaves until the next collection.
// readResponse copies what it keeps out of the buffer.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// readResponse parses an HTTP/1.x response: status, the headers a probe
// uses, and at most maxBody bytes of body. A non-zero code with an error
// means the body failed.
func readResponse(br *bufio.Reader) (httpResponse, error) {
	h, err := readHead(br)
	if err != nil {
		return httpResponse{}, err
	}
	if !h.hasBody() {
		return httpResponse{code: h.code, location: h.location}, nil
	}
	return readBody(br, h)
}

// readBody reads at most maxBody bytes of the body that follows h. A
// non-zero code with an error means the body failed.
func readBody(br *bufio.Reader, h httpHead) (httpResponse, error) {
	r := httpResponse{code: h.code, location: h.location}
	limit := int64(maxBody)
	if h.length >= 0 && h.length < limit {
		limit = h.length
	}
	buf := make([]byte, limit)
	n, err := io.ReadFull(br, buf)
	r.body = buf[:n]
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		if h.length < 0 { // close-delimited body: EOF is its end
			return r, nil
		}
		return r, fmt.Errorf("body ended after %d of %d bytes", n, h.length)
	}
	if err != nil {
		return r, err
	}
	// A close-delimited body of exactly 10 KiB reads as truncated: telling
	// would mean waiting for one more byte, perhaps until the deadline.
	r.truncated = h.length < 0 || h.length > maxBody
	return r, nil
}

// httpHead is a response's status and the headers a probe uses.
type httpHead struct {
	code     int
	location string
	length   int64 // Content-Length; -1: none, or chunked
	chunked  bool  // Transfer-Encoding
	close    bool  // Connection: close
}

func (h httpHead) hasBody() bool {
	return h.code != 204 && h.code != 304 && h.code/100 != 1
}

// readHead reads a response's status line and headers, skipping 1xx
// informational responses. It allocates only for a Location it keeps and
// for errors: an early http:// attempt parses a response every few
// milliseconds while a daemon loads.
func readHead(br *bufio.Reader) (httpHead, error) {
	for {
		code, err := readStatus(br)
		if err != nil {
			return httpHead{}, err
		}
		h := httpHead{code: code, length: -1}
		for {
			line, err := readLineBytes(br)
			if err != nil {
				return httpHead{}, err
			}
			if len(line) == 0 {
				break
			}
			if err := h.header(line); err != nil {
				return httpHead{}, err
			}
		}
		if code >= 200 || code == 101 {
			return h, nil
		}
		// 1xx informational: the real response follows.
	}
}

// header records one header line in h, if it is one a probe uses.
func (h *httpHead) header(line []byte) error {
	k, v, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return fmt.Errorf("malformed header line %q", line)
	}
	v = bytes.TrimSpace(v)
	switch {
	case asciiFold(k, "location"):
		h.location = string(v)
	case asciiFold(k, "content-length"):
		if n, ok := parseLength(v); ok {
			h.length = n
		}
	case asciiFold(k, "transfer-encoding"):
		h.length = -1 // chunked framing: read raw up to the limit
		h.chunked = true
	case asciiFold(k, "connection"):
		h.close = h.close || asciiFold(v, "close")
	}
	return nil
}

// asciiFold reports whether b equals the lower-case ASCII s, ignoring
// case (header names and the token close are ASCII).
func asciiFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length: decimal digits only, as
// strconv.ParseInt would accept them with no sign, without overflow.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func readLine(br *bufio.Reader) (string, error) {
	line, err := readLineBytes(br)
	return string(line), err
}

// readLineBytes is the next line without its CR LF; it aliases br's
// buffer until br is next read.
func readLineBytes(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, errors.New("header line too long")
	}
	if err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

func readStatus(br *bufio.Reader) (int, error) {
	line, err := readLineBytes(br)
	if err != nil {
		return 0, err
	}
	proto, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(rest) < 3 {
		return 0, fmt.Errorf("malformed status line %q", line)
	}
	code := 0
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("malformed status line %q", line)
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 || (len(rest) > 3 && rest[3] != ' ') {
		return 0, fmt.Errorf("malformed status line %q", line)
	}
	return code, nil
}
