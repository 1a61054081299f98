//go:build linux

package health

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/testenv"
)

func rawRequest(t *testing.T, network, addr, req string) string {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, req)
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestEndpointHTTP(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HealthListen = "127.0.0.1:0"
	m, err := NewMonitor(cfg, Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	addr := m.Addr().String()
	for req, want := range map[string]string{
		"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n":            "HTTP/1.1 503 Service Unavailable\r\n",
		"GET /livez?verbose HTTP/1.0\r\n\r\n":                "HTTP/1.1 200 OK\r\n",
		"GET /nope HTTP/1.1\r\n\r\n":                         "HTTP/1.1 404 Not Found\r\n",
		"POST /readyz HTTP/1.1\r\nContent-Length: 0\r\n\r\n": "HTTP/1.1 405 Method Not Allowed\r\n",
		"garbage\r\n\r\n":                                    "HTTP/1.1 400 Bad Request\r\n",
		"HEAD /status HTTP/1.1\r\n\r\n":                      "HTTP/1.1 200 OK\r\n",
	} {
		got := rawRequest(t, "tcp", addr, req)
		if !strings.HasPrefix(got, want) {
			t.Errorf("%q -> %q, want %q", req, got, want)
		}
		if strings.HasPrefix(req, "HEAD") && !strings.HasSuffix(got, "\r\n\r\n") {
			t.Errorf("HEAD answered with a body: %q", got)
		}
	}
	// A standard client agrees with the hand-written server.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "# TYPE oxios_init_ready gauge") || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("/metrics: %d %q\n%s", resp.StatusCode, resp.Header, b)
	}
	// A client that connects and says nothing does not hold the endpoint.
	var idle []net.Conn
	for i := 0; i < MaxConns+4; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	for _, c := range idle {
		c.Close()
	}
	if err := Query(addr, "liveness", 2*time.Second); err != nil {
		t.Errorf("after idle clients: %v", err)
	}
}

func TestEndpointUnixSocketLifecycle(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "h.sock")
	// A stale socket from a previous run (nobody listening) is replaced.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	cfg := DefaultConfig()
	cfg.HealthListen = "unix:" + sock
	m, err := NewMonitor(cfg, Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if err := Query("unix:"+sock, "liveness", time.Second); err != nil {
		t.Fatal(err)
	}
	// A live one is not stolen.
	m2, _ := NewMonitor(cfg, Hooks{}, nil)
	if err := m2.Start(); err == nil {
		m2.Close()
		t.Fatal("a second monitor took over a live health socket")
	}
	m.Close()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
	if err := Query("unix:"+sock, "liveness", time.Second); err == nil {
		t.Error("Query succeeded against a closed monitor")
	}
}

func TestHTTPProtocolEdges(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.(http.Flusher).Flush() // forces chunked encoding
			io.WriteString(w, strings.Repeat("x", 100))
		case "/https-same-host":
			http.Redirect(w, r, "https://"+r.Host+"/", http.StatusFound) // same host, TLS on a plain port: fails
		case "/query":
			if r.URL.RawQuery != "a=1&b=2" {
				w.WriteHeader(500)
			}
		}
	}))
	defer srv.Close()
	for path, want := range map[string]Status{"/chunked": Success, "/query?a=1&b=2": Success, "/https-same-host": Failure} {
		if r := probeOnce(t, mustProber(t, srv.URL+path), time.Second); r.Status != want {
			t.Errorf("%s: %+v, want %v", path, r, want)
		}
	}
	// Raw servers: a 100 Continue before the answer, garbage, a huge header.
	for name, tc := range map[string]struct {
		answer string
		want   Status
	}{
		"1xx":     {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", Success},
		"garbage": {"SSH-2.0-OpenSSH\r\n", Failure},
		"hugehdr": {"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", Failure},
		"http10":  {"HTTP/1.0 200 OK\r\n\r\nbody until close", Success},
		"short":   {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Failure},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			io.WriteString(c, tc.answer)
			c.Close()
		}()
		r := probeOnce(t, mustProber(t, "http://"+ln.Addr().String()+"/"), time.Second)
		if r.Status != tc.want {
			t.Errorf("%s: %+v, want %v", name, r, tc.want)
		}
		ln.Close()
	}
}

// The probe loop allocates (almost) nothing per tick: listen:// readiness
// with a 1 ms period against a live listener.
func TestRunnerSteadyStateAllocs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := DefaultConfig()
	cfg.Readiness = ProbeConfig{Spec: "listen://:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port),
		Period: time.Millisecond, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3}
	m, err := NewMonitor(cfg, Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.ChildStarted(os.Getpid())
	testenv.WaitFor(t, "ready", 2*time.Second, m.Ready)
	r := m.runners[kindReadiness]
	count := func() uint64 { return r.counts[Success].Load() }
	testenv.WaitFor(t, "warm-up", 2*time.Second, func() bool { return count() > 20 })
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n0 := count()
	testenv.WaitFor(t, "100 more probes", 30*time.Second, func() bool { return count() >= n0+100 })
	runtime.ReadMemStats(&after)
	probes := count() - n0
	allocs := after.Mallocs - before.Mallocs
	if per := float64(allocs) / float64(probes); per > 0.5 {
		t.Errorf("%d allocations for %d probes (%.2f per probe)", allocs, probes, per)
	}
	t.Logf("%d probes, %d allocations", probes, allocs)
}

// logSeen is a logrus hook that hands each message to a channel.
type logSeen chan string

func (c logSeen) Levels() []logrus.Level { return logrus.AllLevels }
func (c logSeen) Fire(e *logrus.Entry) error {
	select {
	case c <- e.Message:
	default:
	}
	return nil
}

// Out of file descriptors, accept fails (EMFILE); the endpoint must keep
// serving once descriptors are free again, or every `oxios-init probe`
// would fail for the rest of the daemon's life.
func TestEndpointSurvivesEMFILE(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	seen := make(logSeen, 64)
	log.AddHook(seen)
	cfg := DefaultConfig()
	cfg.HealthListen = "127.0.0.1:0"
	m, err := NewMonitor(cfg, Hooks{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	port := m.Addr().(*net.TCPAddr).Port

	// The client's socket exists before the limit drops (connect needs no
	// new descriptor); it is the highest descriptor, so with the soft
	// limit at its number accept() has none to give.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(fd)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		}
	}
	defer restore()
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		restore()
		t.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	for failed := false; !failed; {
		select {
		case msg := <-seen:
			failed = strings.Contains(msg, "accept failed")
		case <-timeout:
			restore()
			t.Fatal("accept did not fail with the descriptor limit reached")
		}
	}
	restore()
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	if _, err := unix.Write(fd, []byte("GET /livez HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := unix.Read(fd, buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200 ") {
		t.Fatalf("after EMFILE: %q, %v (the endpoint stopped accepting)", buf[:max(n, 0)], err)
	}
}

// A request whose head arrives a byte at a time, with headers long enough
// that the reader's buffer is compacted after the request line: the
// answer is still for the path asked.
func TestEndpointRequestInPieces(t *testing.T) {
	m, err := NewMonitor(DefaultConfig(), Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, method := range []string{"GET", "HEAD"} {
		req := method + " /nope?x=1 HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 900) + "\r\n\r\n"
		var out bytes.Buffer
		m.handle(iotest.OneByteReader(strings.NewReader(req)), &out)
		if !strings.HasPrefix(out.String(), "HTTP/1.1 404 Not Found\r\n") {
			t.Errorf("%s /nope in pieces: %q", method, out.String())
		}
		if hasBody := strings.Contains(out.String(), "not found: try"); hasBody != (method == "GET") {
			t.Errorf("%s /nope in pieces: body %v", method, hasBody)
		}
	}
}
