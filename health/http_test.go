//go:build linux

package health

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

func httpSpec(srv *httptest.Server, path string) string { return srv.URL + path }

// stallingServer answers each request with what start writes, flushes it,
// then sends nothing more until the client leaves or the test ends.
func stallingServer(t *testing.T, start func(http.ResponseWriter)) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start(w)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	// Cleanups run last-in first-out: release the handlers, then close.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv
}

func TestHTTPStatusCodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if r.Header.Get("User-Agent") != userAgent {
			code = 418
		}
		w.WriteHeader(code)
	}))
	defer srv.Close()
	for code, want := range map[int]Status{200: Success, 204: Success, 399: Success, 400: Failure, 404: Failure, 500: Failure, 503: Failure} {
		r := probeOnce(t, mustProber(t, httpSpec(srv, "/"+strconv.Itoa(code))), time.Second)
		if r.Status != want {
			t.Errorf("HTTP %d: %+v, want %v", code, r, want)
		}
	}
}

func TestHTTPSNotVerified(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	if clientTLS == nil { // -tags oxios_nohttps, as the Makefile builds oxios-init
		spec, err := ParseSpec(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewProber(spec); !errors.Is(err, ErrNoHTTPS) {
			t.Fatalf("https:// in a build without it: NewProber err %v, want ErrNoHTTPS", err)
		}
		return
	}
	if r := probeOnce(t, mustProber(t, srv.URL+"/"), time.Second); r.Status != Success {
		t.Fatalf("https with a self-signed certificate: %+v (the kubelet does not verify)", r)
	}
}

func TestHTTPRedirectSameHost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-ok":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/to-bad":
			http.Redirect(w, r, "/bad", http.StatusMovedPermanently)
		case "/ok":
		default:
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	if r := probeOnce(t, mustProber(t, httpSpec(srv, "/to-ok")), time.Second); r.Status != Success || r.Detail != "HTTP 200" {
		t.Errorf("same-host redirect to 200: %+v", r)
	}
	if r := probeOnce(t, mustProber(t, httpSpec(srv, "/to-bad")), time.Second); r.Status != Failure || r.Detail != "HTTP 500" {
		t.Errorf("same-host redirect to 500 must be followed: %+v", r)
	}
}

func TestHTTPRedirectOtherHost(t *testing.T) {
	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		w.WriteHeader(500)
	}))
	defer other.Close()
	port := other.Listener.Addr().(*net.TCPAddr).Port
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// "localhost" is another host name than 127.0.0.1, as the kubelet compares them.
		http.Redirect(w, r, "http://localhost:"+strconv.Itoa(port)+"/", http.StatusFound)
	}))
	defer srv.Close()
	r := probeOnce(t, mustProber(t, httpSpec(srv, "/")), time.Second)
	if r.Status != Success || !strings.Contains(r.Detail, "not followed") {
		t.Errorf("redirect to another host: %+v, want the 302 taken as is (kubelet)", r)
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}
}

func TestHTTPRedirectLoop(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "/loop", http.StatusFound)
	}))
	defer srv.Close()
	r := probeOnce(t, mustProber(t, httpSpec(srv, "/loop")), 2*time.Second)
	if r.Status != Failure || !strings.Contains(r.Detail, "10 redirects") {
		t.Errorf("redirect loop: %+v", r)
	}
	if n := hits.Load(); n != maxRedirects { // as Go and the kubelet count them
		t.Errorf("%d requests for a redirect loop, want %d", n, maxRedirects)
	}
}

// A large body is not read past 10 KiB: the server here sends 64 KiB and
// then stalls; the probe must succeed without waiting for the rest.
func TestHTTPLargeBody(t *testing.T) {
	srv := stallingServer(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", strconv.Itoa(1<<20))
		w.Write(make([]byte, 64<<10))
	})
	start := time.Now()
	r := probeOnce(t, mustProber(t, httpSpec(srv, "/")), 10*time.Second)
	if r.Status != Success || !strings.Contains(r.Detail, "truncated") {
		t.Fatalf("64 KiB body then a stall: %+v", r)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("probe took %v: it read past 10 KiB", el)
	}
}

func TestHTTPStallAfterHeaders(t *testing.T) {
	srv := stallingServer(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
	})
	start := time.Now()
	r := probeOnce(t, mustProber(t, httpSpec(srv, "/")), 300*time.Millisecond)
	el := time.Since(start)
	if r.Status != Failure || !strings.Contains(r.Detail, "timed out") {
		t.Fatalf("server stalling after its headers: %+v", r)
	}
	if el < 250*time.Millisecond || el > 3*time.Second {
		t.Fatalf("stall detected after %v, want about the 300ms timeout", el)
	}
}

func TestHTTPRefusedAndTimeout(t *testing.T) {
	if r := probeOnce(t, mustProber(t, "http://127.0.0.1:"+strconv.Itoa(testenv.FreePort(t))+"/"), time.Second); r.Status != Failure {
		t.Errorf("refused: %+v", r)
	}
	port := fullBacklogListener(t)
	if r := probeOnce(t, mustProber(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/"), 200*time.Millisecond); r.Status != Failure {
		t.Errorf("connect timeout: %+v", r)
	}
}

// A build without TLS (the Makefile's oxios-init: -tags oxios_nohttps)
// refuses an https:// probe when it is configured, and a redirect to
// https:// is a failure that says why.
func TestHTTPSLeftOut(t *testing.T) {
	saved := clientTLS
	clientTLS = nil
	defer func() { clientTLS = saved }()
	spec, err := ParseSpec("https://127.0.0.1:8443/health")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewProber(spec); !errors.Is(err, ErrNoHTTPS) {
		t.Fatalf("NewProber(https) without TLS: %v, want ErrNoHTTPS", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://"+r.Host+"/", http.StatusFound)
	}))
	defer srv.Close()
	r := probeOnce(t, mustProber(t, httpSpec(srv, "/")), time.Second)
	if r.Status != Failure || !strings.Contains(r.Detail, "oxios_nohttps") {
		t.Fatalf("redirect to https without TLS: %+v, want a failure naming the build tag", r)
	}
}
