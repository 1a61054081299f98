package health

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
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
