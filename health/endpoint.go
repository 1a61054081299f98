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
	m.handle(c, writerFunc(func(b []byte) (int, error) {
		// The request is in: the connection is being answered and is no
		// longer one to evict.
		m.waiting.remove(e)
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		return c.Write(b)
	}))
	m.waiting.remove(e)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

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
	br := bufio.NewReaderSize(io.LimitReader(r, 8<<10), 1024)
	line, err := readLine(br)
	if err != nil {
		return
	}
	method, rest, _ := strings.Cut(line, " ")
	target, proto, _ := strings.Cut(rest, " ")
	if !strings.HasPrefix(proto, "HTTP/1.") {
		writeResponse(w, 400, "text/plain; charset=utf-8", []byte("bad request\n"), false)
		return
	}
	for { // headers: none matter
		h, err := readLine(br)
		if err != nil {
			return
		}
		if h == "" {
			break
		}
	}
	if method != "GET" && method != "HEAD" {
		writeResponse(w, 405, "text/plain; charset=utf-8", []byte("method not allowed\n"), false)
		return
	}
	path, _, _ := strings.Cut(target, "?")
	code, ctype, body := m.route(path)
	writeResponse(w, code, ctype, body, method == "HEAD")
}

func (m *Monitor) route(path string) (int, string, []byte) {
	const text = "text/plain; charset=utf-8"
	if code, body, ok := m.answerNow(path); ok { // ondemand.go
		return code, text, body
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
		b, _ := json.MarshalIndent(m.StatusNow(), "", "  ")
		return 200, "application/json", append(b, '\n')
	case contract.PathMetrics:
		var b bytes.Buffer
		m.writeMetrics(&b)
		return 200, "text/plain; version=0.0.4; charset=utf-8", b.Bytes()
	}
	return 404, text, []byte("not found: try /livez /readyz /startupz /status /metrics\n")
}

var (
	bodyOK  = map[string][]byte{"live": []byte("live\n"), "ready": []byte("ready\n"), "started": []byte("started\n")}
	bodyNot = map[string][]byte{"live": []byte("not live\n"), "ready": []byte("not ready\n"), "started": []byte("not started\n")}
)

func answer(ok bool, what string) (int, string, []byte) {
	if ok {
		return 200, "text/plain; charset=utf-8", bodyOK[what]
	}
	return 503, "text/plain; charset=utf-8", bodyNot[what]
}

var statusText = map[int]string{200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}

func writeResponse(w io.Writer, code int, ctype string, body []byte, head bool) {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + statusText[code] + "\r\n")
	b.WriteString("Content-Type: " + ctype + "\r\nContent-Length: " + strconv.Itoa(len(body)) +
		"\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
	if !head {
		b.Write(body)
	}
	w.Write(b.Bytes())
}

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
	gauge := func(name, help string, v any) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %v\n", name, help, name, name, v)
	}
	gauge("oxios_init_child_up", "1 when the supervised daemon is running.", b01(s.childUp))
	gauge("oxios_init_child_pid", "PID of the supervised daemon, 0 when none.", cs.PID)
	fmt.Fprintf(b, "# HELP oxios_init_restarts_total Restarts of the daemon by the supervisor.\n# TYPE oxios_init_restarts_total counter\noxios_init_restarts_total %d\n", cs.Restarts)
	gauge("oxios_init_backoff_seconds", "Current restart backoff delay.", strconv.FormatFloat(cs.Backoff.Seconds(), 'g', -1, 64))
	gauge("oxios_init_ready", "1 when the daemon is ready.", b01(s.ready))
	gauge("oxios_init_live", "1 unless a liveness or startup failure is restarting the daemon.", b01(s.live))
	gauge("oxios_init_started", "1 once the startup probe succeeded (or none is set).", b01(s.started))

	// One snapshot per probe, so that every series shows the same run.
	var snaps [numKinds]*snapshot
	for k, r := range m.runners {
		if r != nil {
			sn := r.snapshot()
			snaps[k] = &sn
		}
	}
	b.WriteString("# HELP oxios_init_probe_success 1 when the last result of the probe was a success.\n# TYPE oxios_init_probe_success gauge\n")
	for k, sn := range snaps {
		if sn != nil {
			fmt.Fprintf(b, "oxios_init_probe_success{probe=%q} %d\n", probeKind(k).String(), b01(sn.Last.Status == Success && !sn.At.IsZero()))
		}
	}
	b.WriteString("# HELP oxios_init_probe_results_total Probe results by outcome.\n# TYPE oxios_init_probe_results_total counter\n")
	for k, sn := range snaps {
		if sn != nil {
			for st := Unknown; st <= Failure; st++ {
				fmt.Fprintf(b, "oxios_init_probe_results_total{probe=%q,result=%q} %d\n", probeKind(k).String(), st.String(), sn.Counts[st])
			}
		}
	}
	b.WriteString("# HELP oxios_init_probe_skipped_ticks_total Probe periods skipped because a probe overran.\n# TYPE oxios_init_probe_skipped_ticks_total counter\n")
	for k, sn := range snaps {
		if sn != nil {
			fmt.Fprintf(b, "oxios_init_probe_skipped_ticks_total{probe=%q} %d\n", probeKind(k).String(), sn.Skipped)
		}
	}
	b.WriteString("# HELP oxios_init_probe_duration_seconds Duration of the last probe.\n# TYPE oxios_init_probe_duration_seconds gauge\n")
	for k, sn := range snaps {
		if sn != nil {
			fmt.Fprintf(b, "oxios_init_probe_duration_seconds{probe=%q} %s\n", probeKind(k).String(), strconv.FormatFloat(sn.Dur.Seconds(), 'g', -1, 64))
		}
	}
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
