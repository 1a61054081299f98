package health

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a7garden/oxios/runtime/contract"
)

// The health endpoint, spoken by hand over HTTP/1.1 (see http.go for why
// not net/http):
//
//	/livez /readyz /startupz  200 or 503, for Kubernetes and Docker probes
//	/status                   JSON: child, restarts, backoff, last results
//	/metrics                  Prometheus text format 0.0.4
//
// One request per connection (Connection: close), GET or HEAD, each with
// a deadline for its request and one for its response.
//
// Slow and idle clients (slowloris) must not starve the probes: the
// kubelet restarts a pod whose /livez does not answer, and in a cluster
// the endpoint listens on the pod network. So the accept loop never waits
// for a free slot: every connection is accepted at once, and at MaxConns
// connections still waiting for their request the oldest of them is
// closed. A probe client sends its request as soon as it connects and is
// answered within microseconds, so it is always among the newest; to
// evict it, an attacker has to open MaxConns connections in that time.
const (
	// MaxConns is how many connections waiting for their request the
	// endpoint holds; the next one closes the oldest.
	MaxConns      = 256
	headerTimeout = 2 * time.Second // a probe client sends its request at once
	writeTimeout  = 2 * time.Second
)

func (m *Monitor) serve(ln net.Listener) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE, ENFILE, ENOBUFS pass: stopping would fail every
			// `oxios-init probe` from then on and get a healthy daemon
			// killed. No event says a descriptor is free again, so back
			// off as net/http's Serve does (5 ms doubling to 1 s).
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			m.log.WithError(err).Warnf("health endpoint: accept failed; retrying in %v", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		e := m.waiting.add(c)
		m.conns.Add(1)
		go func() {
			defer m.conns.Done()
			m.serveConn(c, e)
		}()
	}
}

func (m *Monitor) serveConn(c net.Conn, e *list.Element) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(headerTimeout))
	x := exchanges.Get().(*exchange)
	defer exchanges.Put(x)
	m.exchange(x, c)
	// The request is in: the connection is being answered and is no
	// longer one to evict.
	m.waiting.remove(e)
	if x.out.Len() > 0 {
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		c.Write(x.out.Bytes())
	}
}

// exchange is one request's buffers, kept for the next request: PID 1
// answers the kubelet's probes for the container's whole life, and the
// garbage of every answer is what makes the Go runtime collect, and
// grow.
type exchange struct {
	lim  io.LimitedReader
	br   *bufio.Reader // reads the request from lim
	path []byte        // the request's, without its query
	body bytes.Buffer  // /status and /metrics
	out  bytes.Buffer  // the response
	enc  *json.Encoder // /status, writing to body
}

var exchanges = sync.Pool{New: func() any { return newExchange() }}

func newExchange() *exchange {
	x := &exchange{br: bufio.NewReaderSize(nil, 1024)}
	x.enc = json.NewEncoder(&x.body)
	x.enc.SetIndent("", "  ")
	return x
}

// connSet is the connections still waiting for their request, oldest
// first, at most MaxConns of them.
type connSet struct {
	mu       sync.Mutex
	l        list.List // of net.Conn
	accepted uint64    // connections ever added (tests wait on it)
	evicted  uint64
}

// add records c, closing the oldest waiting connection when at the cap.
func (s *connSet) add(c net.Conn) *list.Element {
	s.mu.Lock()
	var old net.Conn
	if s.l.Len() >= MaxConns {
		old = s.l.Remove(s.l.Front()).(net.Conn)
		s.evicted++
	}
	e := s.l.PushBack(c)
	s.accepted++
	s.mu.Unlock()
	if old != nil {
		old.Close() // its goroutine's Read returns at once
	}
	return e
}

func (s *connSet) remove(e *list.Element) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.l.Remove(e) // a no-op for an element already removed (evicted)
}

// closeAll closes every waiting connection: on shutdown, a slow client
// must not hold up PID 1's exit until its header deadline.
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Remove, not Init: the connections' goroutines still call remove
	// with their elements, which must then be no-ops.
	for e := s.l.Front(); e != nil; e = s.l.Front() {
		s.l.Remove(e).(net.Conn).Close()
	}
}

// counts: waiting now, accepted and evicted so far.
func (s *connSet) counts() (waiting int, accepted, evicted uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.l.Len(), s.accepted, s.evicted
}

// handle reads one request from r and writes its response to w.
func (m *Monitor) handle(r io.Reader, w io.Writer) {
	x := exchanges.Get().(*exchange)
	defer exchanges.Put(x)
	m.exchange(x, r)
	if x.out.Len() > 0 {
		w.Write(x.out.Bytes())
	}
}

// exchange reads one request from r and leaves its response in x.out
// (empty: no answer, the request was incomplete).
func (m *Monitor) exchange(x *exchange, r io.Reader) {
	x.out.Reset()
	x.lim = io.LimitedReader{R: r, N: 8 << 10}
	x.br.Reset(&x.lim)
	defer func() { x.lim.R = nil; x.br.Reset(nil) }() // the pool must not keep the connection
	line, err := headLine(x.br)
	if err != nil {
		return
	}
	method, rest, _ := bytes.Cut(line, []byte(" "))
	target, proto, _ := bytes.Cut(rest, []byte(" "))
	if !bytes.HasPrefix(proto, []byte("HTTP/1.")) {
		writeResponse(&x.out, 400, textPlain, bodyBadRequest, false)
		return
	}
	// line is in br's buffer, which reading the headers may overwrite.
	head, get := string(method) == "HEAD", string(method) == "GET"
	path, _, _ := bytes.Cut(target, []byte("?"))
	x.path = append(x.path[:0], path...)
	for { // headers: none matter
		h, err := headLine(x.br)
		if err != nil {
			return
		}
		if len(h) == 0 {
			break
		}
	}
	if !head && !get {
		writeResponse(&x.out, 405, textPlain, bodyNotAllowed, false)
		return
	}
	x.body.Reset()
	code, ctype, body := m.route(string(x.path), x)
	writeResponse(&x.out, code, ctype, body, head)
}

// headLine reads one line of a request head without its line ending; the
// line is in br's buffer, valid until br is read again.
func headLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, err // bufio.ErrBufferFull: a line too long
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

const textPlain = "text/plain; charset=utf-8"

var (
	bodyBadRequest = []byte("bad request\n")
	bodyNotAllowed = []byte("method not allowed\n")
	bodyNotFound   = []byte("not found: try /livez /readyz /startupz /status /metrics\n")
)

// route answers path: its status, content type and body, which it
// builds in x.body for /status and /metrics.
func (m *Monitor) route(path string, x *exchange) (int, string, []byte) {
	if code, body, ok := m.answerNow(path); ok { // ondemand.go
		return code, textPlain, body
	}
	s := m.state()
	switch path {
	case contract.PathLivez:
		return answer(s.live, "live")
	case contract.PathReadyz:
		return answer(s.ready, "ready")
	case contract.PathStartupz:
		return answer(s.started, "started")
	case contract.PathStatus:
		x.enc.Encode(m.StatusNow())
		return 200, "application/json", x.body.Bytes()
	case contract.PathMetrics:
		m.writeMetrics(&x.body)
		return 200, "text/plain; version=0.0.4; charset=utf-8", x.body.Bytes()
	}
	return 404, textPlain, bodyNotFound
}

var (
	bodyOK  = map[string][]byte{"live": []byte("live\n"), "ready": []byte("ready\n"), "started": []byte("started\n")}
	bodyNot = map[string][]byte{"live": []byte("not live\n"), "ready": []byte("not ready\n"), "started": []byte("not started\n")}
)

func answer(ok bool, what string) (int, string, []byte) {
	if ok {
		return 200, textPlain, bodyOK[what]
	}
	return 503, textPlain, bodyNot[what]
}

var statusText = map[int]string{200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}

func writeResponse(b *bytes.Buffer, code int, ctype string, body []byte, head bool) {
	b.WriteString("HTTP/1.1 ")
	writeInt(b, int64(code))
	b.WriteByte(' ')
	b.WriteString(statusText[code])
	b.WriteString("\r\nContent-Type: ")
	b.WriteString(ctype)
	b.WriteString("\r\nContent-Length: ")
	writeInt(b, int64(len(body)))
	b.WriteString("\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
	if !head {
		b.Write(body)
	}
}

func writeInt(b *bytes.Buffer, n int64) { b.Write(strconv.AppendInt(b.AvailableBuffer(), n, 10)) }

func writeFloat(b *bytes.Buffer, f float64) {
	b.Write(strconv.AppendFloat(b.AvailableBuffer(), f, 'g', -1, 64))
}

func writeQuoted(b *bytes.Buffer, s string) { b.Write(strconv.AppendQuote(b.AvailableBuffer(), s)) }

func (m *Monitor) childState() ChildState {
	if m.hooks.Child != nil {
		return m.hooks.Child()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := ChildState{PID: m.pid, State: "exited"}
	if m.childUp {
		cs.State = "running"
	}
	return cs
}

// StatusNow returns what /status serves.
func (m *Monitor) StatusNow() contract.Report {
	cs := m.childState()
	s := m.state()
	st := contract.Report{
		Child:   contract.ChildReport{PID: cs.PID, State: cs.State, Restarts: cs.Restarts, Backoff: cs.Backoff.Seconds()},
		Ready:   s.ready,
		Live:    s.live,
		Started: s.started,
		Probes:  map[string]contract.ProbeReport{},
	}
	if m.notifSt != nil {
		st.DaemonStatus = m.notifSt.Status()
	}
	for k, r := range m.runners {
		if r == nil {
			continue
		}
		sn := r.snapshot()
		ps := contract.ProbeReport{Spec: redactSpec(r.cfg.Spec), Time: sn.At, Duration: sn.Dur.Seconds(),
			Successes: sn.Successes, Failures: sn.Failures, Skipped: sn.Skipped}
		if !sn.At.IsZero() {
			ps.Result, ps.Detail = sn.Last.Status.String(), redactText(sn.Last.Detail)
		}
		st.Probes[probeKind(k).String()] = ps
	}
	return st
}

func b01(v bool) int {
	if v {
		return 1
	}
	return 0
}

// writeMetrics writes the Prometheus text exposition format 0.0.4.
func (m *Monitor) writeMetrics(b *bytes.Buffer) {
	cs := m.childState()
	s := m.state()
	gauge := func(name, help string) {
		for _, part := range [...]string{"# HELP ", name, " ", help, "\n# TYPE ", name, " gauge\n", name, " "} {
			b.WriteString(part)
		}
	}
	gauge("oxios_init_child_up", "1 when the supervised daemon is running.")
	writeLine(b, int64(b01(s.childUp)))
	gauge("oxios_init_child_pid", "PID of the supervised daemon, 0 when none.")
	writeLine(b, int64(cs.PID))
	b.WriteString("# HELP oxios_init_restarts_total Restarts of the daemon by the supervisor.\n# TYPE oxios_init_restarts_total counter\noxios_init_restarts_total ")
	writeLine(b, int64(cs.Restarts))
	gauge("oxios_init_backoff_seconds", "Current restart backoff delay.")
	writeFloat(b, cs.Backoff.Seconds())
	b.WriteByte('\n')
	gauge("oxios_init_ready", "1 when the daemon is ready.")
	writeLine(b, int64(b01(s.ready)))
	gauge("oxios_init_live", "1 unless a liveness or startup failure is restarting the daemon.")
	writeLine(b, int64(b01(s.live)))
	gauge("oxios_init_started", "1 once the startup probe succeeded (or none is set).")
	writeLine(b, int64(b01(s.started)))

	// One snapshot per probe, so that every series shows the same run.
	var snaps [numKinds]snapshot
	var have [numKinds]bool
	for k, r := range m.runners {
		if r != nil {
			snaps[k], have[k] = r.snapshot(), true
		}
	}
	series := func(name string, k int) {
		b.WriteString(name)
		b.WriteString("{probe=")
		writeQuoted(b, probeKind(k).String())
	}
	b.WriteString("# HELP oxios_init_probe_success 1 when the last result of the probe was a success.\n# TYPE oxios_init_probe_success gauge\n")
	for k := range snaps {
		if have[k] {
			series("oxios_init_probe_success", k)
			b.WriteString("} ")
			writeLine(b, int64(b01(snaps[k].Last.Status == Success && !snaps[k].At.IsZero())))
		}
	}
	b.WriteString("# HELP oxios_init_probe_results_total Probe results by outcome.\n# TYPE oxios_init_probe_results_total counter\n")
	for k := range snaps {
		if have[k] {
			for st := Unknown; st <= Failure; st++ {
				series("oxios_init_probe_results_total", k)
				b.WriteString(",result=")
				writeQuoted(b, st.String())
				b.WriteString("} ")
				writeLine(b, int64(snaps[k].Counts[st]))
			}
		}
	}
	b.WriteString("# HELP oxios_init_probe_skipped_ticks_total Probe periods skipped because a probe overran.\n# TYPE oxios_init_probe_skipped_ticks_total counter\n")
	for k := range snaps {
		if have[k] {
			series("oxios_init_probe_skipped_ticks_total", k)
			b.WriteString("} ")
			writeLine(b, int64(snaps[k].Skipped))
		}
	}
	b.WriteString("# HELP oxios_init_probe_duration_seconds Duration of the last probe.\n# TYPE oxios_init_probe_duration_seconds gauge\n")
	for k := range snaps {
		if have[k] {
			series("oxios_init_probe_duration_seconds", k)
			b.WriteString("} ")
			writeFloat(b, snaps[k].Dur.Seconds())
			b.WriteByte('\n')
		}
	}
}

// writeLine writes n and a newline.
func writeLine(b *bytes.Buffer, n int64) {
	writeInt(b, n)
	b.WriteByte('\n')
}

// kindPaths maps `oxios-init probe KIND` to the endpoint path.
var kindPaths = map[string]string{
	"readiness": contract.PathReadyz, "ready": contract.PathReadyz,
	"liveness": contract.PathLivez, "live": contract.PathLivez,
	"startup": contract.PathStartupz, "started": contract.PathStartupz,
}

// ErrNotOK is wrapped by Query when the supervisor answered other than 200.
var ErrNotOK = fmt.Errorf("probe not ok")

// Query asks the supervisor listening on addr for the state of one kind
// ("readiness", "liveness", "startup"); nil means 200. It backs
// `oxios-init probe KIND`.
func Query(addr, kind string, timeout time.Duration) error {
	path, ok := kindPaths[kind]
	if !ok {
		return fmt.Errorf("probe kind %q: want readiness, liveness or startup", kind)
	}
	if addr == "" {
		return fmt.Errorf("no health endpoint: set --health-listen or OXIOS_INIT_HEALTH_LISTEN")
	}
	if err := checkListenAddr(addr); err != nil {
		return fmt.Errorf("health endpoint %q: %w", addr, err)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	network, dialAddr, host := "tcp", addr, addr
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, dialAddr, host = "unix", p, "localhost"
	}
	u := &url.URL{Scheme: "http", Host: host, Path: path}
	resp, err := httpGet(context.Background(), network, dialAddr, u, time.Now().Add(timeout))
	if err != nil {
		return fmt.Errorf("health endpoint %s: %w", addr, err)
	}
	if resp.code != 200 {
		return fmt.Errorf("%w: %s: HTTP %d %s", ErrNotOK, kind, resp.code, strings.TrimSpace(string(resp.body)))
	}
	return nil
}
