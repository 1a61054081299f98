package health

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzReadResponse: the hand-written HTTP response parser never panics,
// never reads more than its limits, and a code it returns is a real one.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 503 x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200\r\n\r\n",
		"garbage",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := readResponse(bufio.NewReaderSize(bytes.NewReader(in), 4096))
		if len(r.body) > maxBody {
			t.Fatalf("read %d body bytes", len(r.body))
		}
		if err == nil && (r.code < 100 || r.code > 999) {
			t.Fatalf("code %d accepted", r.code)
		}
	})
}

// FuzzConfigSet: any option name and value either is refused or leaves a
// configuration whose probes can be built (Set validates what it takes).
func FuzzConfigSet(f *testing.F) {
	for _, kv := range [][2]string{
		{"readiness", "listen://:4200"}, {"liveness-period", "10s"}, {"startup-failure-threshold", "30"},
		{"readiness-timeout", "500ms"}, {"liveness-initial-delay", "5"}, {"health-listen", "unix:/run/h.sock"},
		{"ready-file", "/run/ready"}, {"readiness-success-threshold", "2"}, {"nope", "x"},
	} {
		f.Add(kv[0], kv[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		c := DefaultConfig()
		known, err := c.Set(name, value)
		if !known || err != nil {
			return
		}
		if strings.HasSuffix(name, "success-threshold") && !strings.HasPrefix(name, "readiness") {
			return // Set takes it; Validate refuses anything but 1 (tested elsewhere)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Set(%q, %q) accepted, Validate: %v", name, value, err)
		}
		if _, err := NewMonitor(c, Hooks{}, nil); err != nil {
			t.Fatalf("Set(%q, %q) accepted, NewMonitor: %v", name, value, err)
		}
	})
}

// FuzzEndpointRequest: any bytes sent to the health endpoint get either no
// answer (an incomplete request) or a well-formed response with a status
// the endpoint uses; /status is always valid JSON.
func FuzzEndpointRequest(f *testing.F) {
	for _, s := range []string{
		"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", "GET /status HTTP/1.1\r\n\r\n", "HEAD /metrics HTTP/1.0\r\n\r\n",
		"POST /livez HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", "GET /status?x=1 HTTP/1.1\r\n\r\n", "\r\n\r\n", "GET / HTTP/2\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	m, err := NewMonitor(DefaultConfig(), Hooks{Child: func() ChildState { return ChildState{PID: 7, State: "running"} }}, nil)
	if err != nil {
		f.Fatal(err)
	}
	m.ChildStarted(7)
	defer m.Close()
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		m.handle(bytes.NewReader(in), &out)
		if out.Len() == 0 {
			return
		}
		r, err := readResponse(bufio.NewReader(&out))
		if err != nil && !bytes.HasPrefix(in, []byte("HEAD ")) {
			t.Fatalf("unparsable response %q: %v", out.String(), err)
		}
		switch r.code {
		case 200, 400, 404, 405, 503:
		default:
			t.Fatalf("status %d for %q", r.code, in)
		}
		if bytes.HasPrefix(in, []byte("GET /status")) && r.code == 200 && !json.Valid(r.body) {
			t.Fatalf("/status is not JSON: %q", r.body)
		}
	})
}

// FuzzSetDuration: every duration option accepts Go durations and whole
// seconds, refuses the rest without panicking, and what it stores
// round-trips through its String form.
func FuzzSetDuration(f *testing.F) {
	for _, s := range []string{"10s", "500ms", "0", "3", "1h2m", "-1s", "1e3s", "", "4294967296", ".5s"} {
		f.Add("readiness-period", s)
		f.Add("liveness-initial-delay", s)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		if !strings.HasSuffix(name, "-period") && !strings.HasSuffix(name, "-timeout") && !strings.HasSuffix(name, "-initial-delay") {
			return
		}
		c := DefaultConfig()
		known, err := c.Set(name, value)
		if !known || err != nil {
			return
		}
		kind, field, _ := strings.Cut(name, "-")
		p := c.probe(kind)
		got := map[string]time.Duration{"period": p.Period, "timeout": p.Timeout, "initial-delay": p.InitialDelay}[field]
		if got < 0 {
			t.Fatalf("Set(%q, %q) stored %v", name, value, got)
		}
		c2 := DefaultConfig()
		if _, err := c2.Set(name, got.String()); err != nil {
			t.Fatalf("Set(%q, %q) stored %v, whose String %q is refused: %v", name, value, got, got.String(), err)
		}
		p2 := c2.probe(kind)
		if again := map[string]time.Duration{"period": p2.Period, "timeout": p2.Timeout, "initial-delay": p2.InitialDelay}[field]; again != got {
			t.Fatalf("round trip %v -> %v", got, again)
		}
	})
}
