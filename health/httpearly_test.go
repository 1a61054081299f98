//go:build linux

package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

// earlyServer answers /ready with 503 until ready is set, then 200,
// counting the connections it accepts; handler, when set, answers
// instead.
type earlyServer struct {
	*httptest.Server
	ready   atomic.Bool
	conns   atomic.Int32
	handler http.HandlerFunc
}

func startEarlyServer(t *testing.T, handler http.HandlerFunc) *earlyServer {
	t.Helper()
	s := &earlyServer{handler: handler}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.handler != nil {
			s.handler(w, r)
			return
		}
		if !s.ready.Load() {
			http.Error(w, "loading", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// earlyProberOf is a gated http:// prober of srv's path, its tree this test
// process (which owns srv's listener).
func earlyProberOf(t *testing.T, srv *earlyServer, path string) *gatedProber {
	t.Helper()
	g, ok := mustProber(t, srv.URL+path).(*gatedProber)
	if !ok || g.early == nil {
		t.Fatalf("%s%s: not a gated http:// prober with early attempts", srv.URL, path)
	}
	g.SetRoot(os.Getpid())
	return g
}

// Before its first success an http:// probe keeps one connection alive
// across attempts; its first success ends that, and the attempts after it
// are the kubelet's, a connection each.
func TestEarlyHTTPKeepsOneConnection(t *testing.T) {
	srv := startEarlyServer(t, nil)
	g := earlyProberOf(t, srv, "/ready")
	for i := 0; i < 5; i++ {
		if r := probeOnce(t, g, time.Second); r.Status != Failure || r.Detail != "HTTP 503" {
			t.Fatalf("attempt %d while loading: %v %q", i, r.Status, r.Detail)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("5 attempts before the first success opened %d connections, want 1", n)
	}
	srv.ready.Store(true)
	if r := probeOnce(t, g, time.Second); r.Status != Success || r.Detail != "HTTP 200" {
		t.Fatalf("once ready: %v %q", r.Status, r.Detail)
	}
	for i := 0; i < 2; i++ {
		if r := probeOnce(t, g, time.Second); r.Status != Success {
			t.Fatalf("after the first success: %v %q", r.Status, r.Detail)
		}
	}
	if n := srv.conns.Load(); n != 3 {
		t.Fatalf("%d connections after two probes past the first success, want 3 (one each)", n)
	}
	g.SetRoot(os.Getpid()) // a new child: kept-alive attempts again
	srv.ready.Store(false)
	for i := 0; i < 3; i++ {
		probeOnce(t, g, time.Second)
	}
	if n := srv.conns.Load(); n != 4 {
		t.Fatalf("a new child's attempts opened %d connections in all, want 4", n)
	}
}

// A daemon that closes each connection (Connection: close), answers
// without a Content-Length (chunked) or redirects gets the right verdict
// every time.
func TestEarlyHTTPStandsAside(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    Status
		detail  string
		conns   int32 // after 3 attempts
	}{
		{"connection close", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			http.Error(w, "loading", http.StatusServiceUnavailable)
		}, Failure, "HTTP 503", 3},
		{"chunked", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("loading"))
			w.(http.Flusher).Flush() // no Content-Length: chunked
			w.Write([]byte(" still"))
		}, Failure, "HTTP 503", 3}, // judged by its status, then plain attempts
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ready" {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
				return
			}
			w.Write([]byte("ok"))
		}, Success, "HTTP 200", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startEarlyServer(t, c.handler)
			g := earlyProberOf(t, srv, "/ready")
			for i := 0; i < 3; i++ {
				r := probeOnce(t, g, time.Second)
				if r.Status != c.want || !strings.HasPrefix(r.Detail, c.detail) {
					t.Fatalf("attempt %d: %v %q, want %v %q", i, r.Status, r.Detail, c.want, c.detail)
				}
			}
			if c.conns != 0 {
				if n := srv.conns.Load(); n != c.conns {
					t.Fatalf("%d connections, want %d", n, c.conns)
				}
			}
		})
	}
}

// A kept connection the daemon closed between attempts (an idle timeout)
// is replaced within the attempt: no failure is reported for it.
func TestEarlyHTTPReconnects(t *testing.T) {
	srv := startEarlyServer(t, nil)
	g := earlyProberOf(t, srv, "/ready")
	if r := probeOnce(t, g, time.Second); r.Detail != "HTTP 503" {
		t.Fatalf("%v %q", r.Status, r.Detail)
	}
	srv.CloseClientConnections()
	srv.ready.Store(true)
	if r := probeOnce(t, g, time.Second); r.Status != Success {
		t.Fatalf("after the daemon closed the kept connection: %v %q", r.Status, r.Detail)
	}
	if n := srv.conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// Cancelling the probe's context (a stop, a new child) ends an attempt
// waiting for the daemon's answer at once, not at the probe's deadline.
func TestEarlyHTTPCancelled(t *testing.T) {
	answered := make(chan struct{})
	srv := startEarlyServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-answered
	})
	defer close(answered)
	g := earlyProberOf(t, srv, "/ready")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	go func() { done <- g.Probe(ctx, time.Now().Add(time.Minute)) }()
	testenv.WaitFor(t, "the request to reach the daemon", 5*time.Second, func() bool { return srv.conns.Load() == 1 })
	cancel()
	wantCancelled(t, done, "a cancelled attempt still waits for the daemon's answer")
}

// While an attempt's kept connection answers, the gate does not look up
// the listener again: the daemon may even have closed its listener. Once
// the kept connection is gone, the gate looks before anything connects.
func TestEarlyHTTPKeptSkipsGate(t *testing.T) {
	srv := startEarlyServer(t, nil)
	g := earlyProberOf(t, srv, "/ready")
	if r := probeOnce(t, g, time.Second); r.Detail != "HTTP 503" {
		t.Fatalf("first attempt: %v %q", r.Status, r.Detail)
	}
	srv.Listener.Close() // no LISTEN socket from here on
	if r := probeOnce(t, g, time.Second); r.Status != Failure || r.Detail != "HTTP 503" {
		t.Fatalf("attempt on the kept connection: %v %q, want the daemon's 503", r.Status, r.Detail)
	}
	srv.CloseClientConnections()
	r := probeOnce(t, g, time.Second)
	if r.Status != Failure || !strings.HasSuffix(r.Detail, "(not connecting)") {
		t.Fatalf("attempt after the kept connection closed: %v %q, want the gate's failure", r.Status, r.Detail)
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// An early attempt on the kept connection allocates nothing: PID 1 makes
// one every few milliseconds while a daemon loads. The daemon here is a
// bare loop answering 503 (net/http would allocate in this process too).
func TestEarlyHTTPNoAllocs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serve503(ln)
	g, ok := mustProber(t, "http://"+ln.Addr().String()+"/ready").(*gatedProber)
	if !ok || g.early == nil {
		t.Fatal("not a gated http:// prober with early attempts")
	}
	g.SetRoot(os.Getpid())
	if r := probeOnce(t, g, 5*time.Second); r.Detail != "HTTP 503" {
		t.Fatalf("first attempt: %v %q", r.Status, r.Detail)
	}
	var r Result
	allocs := testing.AllocsPerRun(50, func() { r = g.Probe(bg, time.Now().Add(5*time.Second)) })
	if r.Detail != "HTTP 503" {
		t.Fatalf("attempt: %v %q", r.Status, r.Detail)
	}
	if allocs != 0 {
		t.Fatalf("an early attempt allocates %.1f times, want 0", allocs)
	}
}

// serve503 answers every request on every connection of ln with a 503,
// allocating nothing per request.
func serve503(ln net.Listener) {
	const resp = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nloading\n"
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf, out := make([]byte, 4096), []byte(resp)
			tail := 0 // bytes of "\r\n\r\n" matched so far
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				for _, b := range buf[:n] {
					switch {
					case b == "\r\n\r\n"[tail]:
						tail++
					case b == '\r':
						tail = 1
					default:
						tail = 0
					}
					if tail == 4 {
						tail = 0
						if _, err := c.Write(out); err != nil {
							return
						}
					}
				}
			}
		}()
	}
}

// The cancellation of the context the kept connection's earlier attempts
// used (the runner's, for a child's whole wait) still ends an attempt
// waiting for the daemon's answer at once.
func TestEarlyHTTPCancelledKept(t *testing.T) {
	answered := make(chan struct{})
	var requests atomic.Int32
	srv := startEarlyServer(t, func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 1 {
			<-answered
		}
		http.Error(w, "loading", http.StatusServiceUnavailable)
	})
	defer close(answered)
	g := earlyProberOf(t, srv, "/ready")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if r := g.Probe(ctx, time.Now().Add(time.Minute)); r.Detail != "HTTP 503" {
		t.Fatalf("first attempt: %v %q", r.Status, r.Detail)
	}
	done := make(chan Result)
	go func() { done <- g.Probe(ctx, time.Now().Add(time.Minute)) }()
	testenv.WaitFor(t, "the second request to reach the daemon", 5*time.Second, func() bool { return requests.Load() == 2 })
	cancel()
	wantCancelled(t, done, "a cancelled attempt on the kept connection still waits for the daemon's answer")
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1 (the second attempt on the kept one)", n)
	}
}

// wantCancelled waits for a cancelled attempt's result, which must be
// Unknown and come long before the daemon's answer; stuck says what a
// wait past that means.
func wantCancelled(t *testing.T, done <-chan Result, stuck string) {
	t.Helper()
	select {
	case r := <-done:
		if r.Status != Unknown {
			t.Fatalf("cancelled attempt: %v %q, want unknown", r.Status, r.Detail)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(stuck)
	}
}
