package main

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// status is the demo's observable state: what /health/ready answers, what
// the heartbeat file says, what the log reports on each change.
type status struct {
	notifyMu   sync.Mutex // serializes update+onChange, so phases are reported in order
	mu         sync.Mutex
	readyAt    time.Time // zero until READY_DELAY has passed (or /debug/ready)
	unready    bool      // /debug/unready or UNREADY_AFTER
	stopping   bool      // a stop signal arrived
	hung       bool      // HANG_AFTER or /debug/hang: HTTP is no longer answered
	listenAddr string
	onChange   func(phase, addr string) // logs and writes the heartbeat
	hangC      chan struct{}            // closed when hung
}

func newStatus() *status { return &status{hangC: make(chan struct{})} }

// phase is one word for the log and the heartbeat file.
func (s *status) phase() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phaseLocked()
}

func (s *status) phaseLocked() string {
	switch {
	case s.stopping:
		return "stopping"
	case s.hung:
		return "hung"
	case s.listenAddr == "":
		return "starting"
	case s.unready:
		return "unready"
	case s.readyAt.IsZero():
		return "listening"
	default:
		return "ready"
	}
}

// ready reports whether /health/ready answers 200, and why not.
func (s *status) ready() (bool, string) {
	p := s.phase()
	return p == "ready", p
}

// update applies fn and reports the new phase if it changed.
func (s *status) update(fn func(s *status)) {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	s.mu.Lock()
	before := s.phaseLocked()
	fn(s)
	after, addr := s.phaseLocked(), s.listenAddr
	s.mu.Unlock()
	if before != after && s.onChange != nil {
		s.onChange(after, addr)
	}
}

func (s *status) setListening(addr string) { s.update(func(s *status) { s.listenAddr = addr }) }
func (s *status) setReady() {
	s.update(func(s *status) {
		if s.readyAt.IsZero() {
			s.readyAt = time.Now()
		}
		s.unready = false
	})
}

// markReadyDelayPassed ends READY_DELAY; unlike /debug/ready it does not
// undo an earlier /debug/unready or UNREADY_AFTER.
func (s *status) markReadyDelayPassed() {
	s.update(func(s *status) {
		if s.readyAt.IsZero() {
			s.readyAt = time.Now()
		}
	})
}
func (s *status) setUnready()  { s.update(func(s *status) { s.unready = true }) }
func (s *status) setStopping() { s.update(func(s *status) { s.stopping = true }) }
func (s *status) setHung() {
	s.update(func(s *status) {
		if !s.hung {
			s.hung = true
			close(s.hangC)
		}
	})
}

// everReady reports whether the demo has been ready at least once.
func (s *status) everReady() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.readyAt.IsZero()
}

func (s *status) isHung() bool {
	select {
	case <-s.hangC:
		return true
	default:
		return false
	}
}

// server is the HTTP side: the endpoints of the real daemon, the /debug
// toggles and a request counter for /metrics.
type server struct {
	st       *status
	info     procInfo
	orphans  func() int
	requests sync.Map // path -> *atomic.Int64
	http     *http.Server
	ln       *hangListener
	closing  atomic.Bool // the listener was closed on purpose (drain)
	// beforeReady counts connections accepted before the demo was first
	// ready: what a readiness probe that connects too early costs it.
	beforeReady atomic.Int64
}

// procInfo is what the status page and /health show about the process.
type procInfo struct {
	Hostname string
	PID      int
	Version  string
	Started  time.Time
}

func newServer(st *status, info procInfo, orphans func() int) *server {
	s := &server{st: st, info: info, orphans: orphans}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.HandleFunc("GET /health", s.handleHealth)
	mux.HandleFunc("GET /health/ready", s.handleReady)
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	mux.HandleFunc("POST /debug/hang", s.handleDebug("hang", st.setHung))
	mux.HandleFunc("POST /debug/unready", s.handleDebug("unready", st.setUnready))
	mux.HandleFunc("POST /debug/ready", s.handleDebug("ready", st.setReady))
	mux.HandleFunc("GET /debug/sleep", s.handleSleep)
	s.http = &http.Server{
		Handler: s.hangGate(s.count(mux)),
		// Probes and curl never need more; a slowloris client must not pin
		// a goroutine forever.
		ReadHeaderTimeout: 10 * time.Second,
	}
	return s
}

// listen opens the socket; Serve runs on it until Shutdown.
func (s *server) listen(addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.ln = newHangListener(&countingListener{Listener: l, s: s}, s.st.hangC)
	return l.Addr(), nil
}

func (s *server) serve() error {
	err := s.http.Serve(s.ln)
	if err == http.ErrServerClosed || s.closing.Load() {
		return nil
	}
	return err
}

// closeListener stops accepting at once; Shutdown then waits for the
// requests in flight. Serve's accept error after this is expected.
func (s *server) closeListener() {
	s.closing.Store(true)
	s.ln.Close()
}

// hangGate makes requests on already-open keep-alive connections hang too:
// once hung, the connection is taken from net/http and held open, unanswered,
// until the process stops. New connections are handled by hangListener.
func (s *server) hangGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.st.isHung() {
			next.ServeHTTP(w, r)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			<-r.Context().Done()
			return
		}
		c, _, err := hj.Hijack()
		if err != nil {
			return
		}
		s.ln.hold(c)
	})
}

func (s *server) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := s.requests.LoadOrStore(r.URL.Path, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"status":         "ok",
		"version":        s.info.Version,
		"pid":            s.info.PID,
		"uptime_seconds": time.Since(s.info.Started).Seconds(),
	})
}

func (s *server) handleReady(w http.ResponseWriter, r *http.Request) {
	ok, phase := s.st.ready()
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"ready": ok, "state": phase})
}

// handleDebug applies a toggle before answering, so the next request sees
// it. /debug/hang still answers its own request: the hang gate was passed
// already, and only later requests (and connections) go unanswered.
func (s *server) handleDebug(name string, apply func()) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		apply()
		writeJSON(w, http.StatusOK, map[string]any{"debug": name})
	}
}

// handleSleep answers the headers at once and the body after ?d=DURATION
// (at most 1h): a slow in-flight request, to observe that a drain waits for
// it and that SIGTERM=exit does not.
func (s *server) handleSleep(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.URL.Query().Get("d"))
	if err != nil || d < 0 || d > time.Hour {
		http.Error(w, "d must be a Go duration between 0 and 1h", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		fmt.Fprintf(w, "slept %s\n", d)
	case <-r.Context().Done():
	}
}

func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	ok, _ := s.st.ready()
	b2i := map[bool]int{false: 0, true: 1}
	fmt.Fprintf(w, "# HELP oxios_demo_build_info Version of the oxios demo daemon.\n# TYPE oxios_demo_build_info gauge\noxios_demo_build_info{version=%q} 1\n", s.info.Version)
	fmt.Fprintf(w, "# HELP oxios_demo_up Always 1 while the demo answers.\n# TYPE oxios_demo_up gauge\noxios_demo_up 1\n")
	fmt.Fprintf(w, "# HELP oxios_demo_ready 1 when /health/ready answers 200.\n# TYPE oxios_demo_ready gauge\noxios_demo_ready %d\n", b2i[ok])
	fmt.Fprintf(w, "# HELP oxios_demo_start_time_seconds Start time of the process since the Unix epoch.\n# TYPE oxios_demo_start_time_seconds gauge\noxios_demo_start_time_seconds %.3f\n", float64(s.info.Started.UnixNano())/1e9)
	fmt.Fprintf(w, "# HELP oxios_demo_uptime_seconds Seconds since the process started.\n# TYPE oxios_demo_uptime_seconds gauge\noxios_demo_uptime_seconds %.3f\n", time.Since(s.info.Started).Seconds())
	fmt.Fprintf(w, "# HELP oxios_demo_orphans Orphaned children left behind (OXIOS_DEMO_ORPHANS).\n# TYPE oxios_demo_orphans gauge\noxios_demo_orphans %d\n", s.orphans())
	fmt.Fprintf(w, "# HELP oxios_demo_connections_before_ready Connections accepted before the demo was first ready.\n# TYPE oxios_demo_connections_before_ready counter\noxios_demo_connections_before_ready %d\n", s.beforeReady.Load())
	fmt.Fprintf(w, "# HELP oxios_demo_http_requests_total HTTP requests received, by path.\n# TYPE oxios_demo_http_requests_total counter\n")
	s.requests.Range(func(k, v any) bool {
		// Only known paths: a scanner must not grow the label set forever.
		switch p := k.(string); p {
		case "/", "/health", "/health/ready", "/metrics", "/debug/hang", "/debug/unready", "/debug/ready", "/debug/sleep":
			fmt.Fprintf(w, "oxios_demo_http_requests_total{path=%s} %d\n", strconv.Quote(p), v.(*atomic.Int64).Load())
		}
		return true
	})
}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>oxios-demo on {{.Hostname}}</title></head>
<body>
<h1>oxios-demo</h1>
<table>
<tr><th align="left">hostname</th><td>{{.Hostname}}</td></tr>
<tr><th align="left">pid</th><td>{{.PID}}</td></tr>
<tr><th align="left">uptime</th><td>{{.Uptime}}</td></tr>
<tr><th align="left">version</th><td>{{.Version}}</td></tr>
<tr><th align="left">state</th><td>{{.State}}</td></tr>
<tr><th align="left">listen</th><td>{{.Listen}}</td></tr>
</table>
<p><a href="/health">/health</a> · <a href="/health/ready">/health/ready</a> · <a href="/metrics">/metrics</a></p>
</body></html>
`))

func (s *server) handleIndex(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	listen := s.st.listenAddr
	s.st.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = indexPage.Execute(w, map[string]any{
		"Hostname": s.info.Hostname,
		"PID":      s.info.PID,
		"Uptime":   time.Since(s.info.Started).Round(time.Second).String(),
		"Version":  s.info.Version,
		"State":    s.st.phase(),
		"Listen":   listen,
	})
}

// countingListener counts the connections accepted before the first ready.
type countingListener struct {
	net.Listener
	s *server
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil && !l.s.st.everReady() {
		l.s.beforeReady.Add(1)
	}
	return c, err
}

// hangListener stops handing connections to net/http once hung: the kernel
// still completes TCP handshakes into the backlog (so a TCP probe or a
// listen-detection probe sees a live socket), but no request is ever read.
// That is what a daemon whose event loop is stuck looks like from outside.
type hangListener struct {
	net.Listener
	hangC     <-chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	held      []net.Conn
}

func newHangListener(l net.Listener, hangC <-chan struct{}) *hangListener {
	return &hangListener{Listener: l, hangC: hangC, closed: make(chan struct{})}
}

func (l *hangListener) Accept() (net.Conn, error) {
	select {
	case <-l.hangC:
		<-l.closed
		return nil, net.ErrClosed
	default:
	}
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case <-l.hangC:
		// Accept was already blocked when the hang began: keep this one
		// connection open and unanswered, then stop accepting.
		l.hold(c)
		<-l.closed
		return nil, net.ErrClosed
	default:
		return c, nil
	}
}

// hold keeps c open and unanswered until the listener closes.
func (l *hangListener) hold(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closed:
		c.Close()
	default:
		l.held = append(l.held, c)
	}
}

// Close is idempotent: drain closes the socket first, Shutdown again.
func (l *hangListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		err = l.Listener.Close()
		l.mu.Lock()
		close(l.closed)
		for _, c := range l.held {
			c.Close()
		}
		l.held = nil
		l.mu.Unlock()
	})
	return err
}
