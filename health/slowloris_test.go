//go:build linux

package health

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

// raiseNoFile makes room for n more descriptors: each slowloris
// connection costs the test two (client and server side).
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		if os.Geteuid() != 0 {
			t.Skipf("RLIMIT_NOFILE hard limit %d < %d and not root to raise it", lim.Max, n)
		}
		lim.Max = n
	}
	old := lim
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raise RLIMIT_NOFILE to %d: %v", n, err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// slowloris opens n connections that each send part of a request's
// headers and then hold, as the attack does.
func slowloris(t *testing.T, network, addr string, n int) {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatalf("slowloris connection %d of %d: %v", i+1, n, err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
			t.Fatalf("slowloris connection %d: %v", i+1, err)
		}
	}
}

// timedGet does one request on a fresh connection and returns the status
// line and how long connect, request and response took.
func timedGet(network, addr, path string) (string, time.Duration, error) {
	t0 := time.Now()
	c, err := net.Dial(network, addr)
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	c.SetDeadline(t0.Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), time.Since(t0), err
}

func startEndpoint(t *testing.T, network string) (*Monitor, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.HealthListen = "127.0.0.1:0"
	if network == "unix" {
		// Short: sun_path holds 108 bytes, and subtest names are long.
		dir, err := os.MkdirTemp("", "hs")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		cfg.HealthListen = "unix:" + filepath.Join(dir, "h.sock")
	}
	m := startMonitor(t, cfg, Hooks{}, nil)
	return m, m.Addr().String()
}

// Slow clients that hold connections open with half a request must not
// keep /livez from answering: the kubelet restarts a pod whose liveness
// probe times out, and the endpoint listens on the pod network.
func TestEndpointSlowloris(t *testing.T) {
	const budget = 100 * time.Millisecond
	for _, network := range []string{"tcp", "unix"} {
		for _, n := range []int{64, 1000} {
			t.Run(network+"/"+strconv.Itoa(n), func(t *testing.T) {
				raiseNoFile(t, uint64(2*n+256+MaxConns))
				m, addr := startEndpoint(t, network)
				slowloris(t, network, addr, n)
				testenv.WaitFor(t, fmt.Sprintf("the endpoint to accept %d connections", n), 10*time.Second, func() bool {
					_, accepted, _ := m.waiting.counts()
					return accepted >= uint64(n)
				})
				var worst time.Duration
				for i := 0; i < 20; i++ {
					line, took, err := timedGet(network, addr, "/livez")
					if err != nil || line != "HTTP/1.1 200 OK" {
						t.Fatalf("/livez %d with %d slow clients held: %q, %v (after %v)", i, n, line, err, took)
					}
					worst = max(worst, took)
				}
				if worst > budget {
					t.Errorf("/livez with %d slow clients held: slowest of 20 answers took %v, want <= %v", n, worst, budget)
				}
				waiting, _, evicted := m.waiting.counts()
				if waiting > MaxConns {
					t.Errorf("%d connections held by the endpoint, cap %d", waiting, MaxConns)
				}
				if n > MaxConns && evicted < uint64(n-MaxConns) {
					t.Errorf("%d slow clients over a cap of %d, but only %d evicted", n, MaxConns, evicted)
				}
				if n <= MaxConns && evicted != 0 {
					t.Errorf("%d evicted under the cap (%d slow clients, cap %d)", evicted, n, MaxConns)
				}
				t.Logf("%s, %d slow clients: slowest /livez %v, %d evicted", network, n, worst, evicted)
			})
		}
	}
}

// Close does not wait for slow clients' header deadlines: oxios-init's
// exit (and so every stop) would.
func TestEndpointCloseDropsSlowClients(t *testing.T) {
	m, addr := startEndpoint(t, "tcp")
	slowloris(t, "tcp", addr, 64)
	testenv.WaitFor(t, "the endpoint to accept 64 connections", 10*time.Second, func() bool {
		_, accepted, _ := m.waiting.counts()
		return accepted >= 64
	})
	t0 := time.Now()
	m.Close()
	if took := time.Since(t0); took > headerTimeout/2 {
		t.Errorf("Close with 64 slow clients took %v (header deadline %v)", took, headerTimeout)
	}
}

// A client that sends nothing is dropped at headerTimeout, without anyone
// else connecting.
func TestEndpointHeaderDeadline(t *testing.T) {
	_, addr := startEndpoint(t, "tcp")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /livez HTTP/1.1\r\n")
	c.SetReadDeadline(time.Now().Add(headerTimeout + 3*time.Second))
	t0 := time.Now()
	n, err := c.Read(make([]byte, 64))
	took := time.Since(t0)
	if n != 0 || err != io.EOF {
		t.Fatalf("read from a connection the endpoint should close: %d bytes, %v", n, err)
	}
	if took < headerTimeout-100*time.Millisecond || took > headerTimeout+time.Second {
		t.Errorf("closed after %v, want about %v", took, headerTimeout)
	}
}

// /status and /metrics are open to whoever reaches the endpoint: exec
// arguments and URL query strings (tokens) must not show, in the spec or
// in a probe's detail.
func TestStatusRedactsSecrets(t *testing.T) {
	refused := func() int { // a port nobody listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}()
	cfg := DefaultConfig()
	cfg.HealthListen = "127.0.0.1:0"
	fast := ProbeConfig{Period: 10 * time.Millisecond, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 1000}
	cfg.Readiness, cfg.Liveness = fast, fast
	cfg.Readiness.Spec = "exec:/bin/sh -c 'exit 3' s3cret-arg"
	cfg.Liveness.Spec = "http://127.0.0.1:" + strconv.Itoa(refused) + "/health?token=s3cret-query"
	m, err := NewMonitor(cfg, Hooks{Spawner: osSpawner{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.ChildStarted(os.Getpid())
	testenv.WaitFor(t, "both probes to report", 5*time.Second, func() bool {
		st := m.StatusNow()
		return st.Probes["readiness"].Result == "failure" && st.Probes["liveness"].Result == "failure"
	})
	addr := m.Addr().String()
	status := rawRequest(t, "tcp", addr, "GET /status HTTP/1.0\r\n\r\n")
	metrics := rawRequest(t, "tcp", addr, "GET /metrics HTTP/1.0\r\n\r\n")
	for _, body := range []string{status, metrics} {
		if strings.Contains(body, "s3cret") {
			t.Errorf("a secret shows:\n%s", body)
		}
	}
	for _, want := range []string{`"spec": "exec:sh …"`, `"spec": "http://127.0.0.1:` + strconv.Itoa(refused) + `/health?…"`} {
		if !strings.Contains(status, want) {
			t.Errorf("/status lacks %s:\n%s", want, status)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"exec:/usr/bin/check --token=x": "exec:check …",
		"exec:check":                    "exec:check",
		"exec:'/a b/c'":                 "exec:c",
		"exec:'unterminated":            "exec:…",
		"http://h:1/p?a=1":              "http://h:1/p?…",
		"https://u:pw@h/p#frag":         "https://h/p?…",
		"http://h/p":                    "http://h/p",
		"tcp://127.0.0.1:80":            "tcp://127.0.0.1:80",
		"listen://:80":                  "listen://:80",
	} {
		if got := redactSpec(in); got != want {
			t.Errorf("redactSpec(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"GET http://h/p?k=s: timeout":                          "GET http://h/p?…: timeout",
		`redirect to "https://x/y?k=s" and http://z/?q=1 done`: `redirect to "https://x/y?…" and http://z/?… done`,
		"HTTP 503":                "HTTP 503",
		"no url, only http words": "no url, only http words",
	} {
		if got := redactText(in); got != want {
			t.Errorf("redactText(%q) = %q, want %q", in, got, want)
		}
	}
}
