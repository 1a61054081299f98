//go:build linux

package health

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// childNotifySocket reads the NOTIFY_SOCKET that oxios-init gave pid.
func childNotifySocket(t *testing.T, pid int) (string, bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := strings.CutPrefix(string(kv), "NOTIFY_SOCKET="); ok {
			return v, true
		}
	}
	return "", false
}

// metric reads one sample of oxios-init's /metrics.
func (p *initProc) metric(series string) float64 {
	p.t.Helper()
	resp, err := http.Get("http://" + p.health + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	p.t.Fatalf("no %s in /metrics", series)
	return 0
}

func pidOf(e logEntry) int {
	f, _ := e.fields["pid"].(float64)
	return int(f)
}

// The demo's READY=1 (after its READY_DELAY) makes it ready, without
// polling: the probe ran once before, once after. The daemon gets its own
// NOTIFY_SOCKET, never oxios-init's, and its STATUS= shows in /status.
func TestIntegrationNotifyReady(t *testing.T) {
	p := startInit(t, []string{"--readiness", "notify://", "--readiness-period", "1h"},
		"OXIOS_DEMO_SD_NOTIFY=1", "OXIOS_DEMO_READY_DELAY=300ms", "NOTIFY_SOCKET=@oxios-test-host-socket")
	next, sent := p.waitLog(0, "daemon sent READY=1", nil, 20*time.Second)
	_, ready := p.waitLog(next, "readiness changed", readyTrue, 10*time.Second)
	if pidOf(sent) != pidOf(ready) {
		t.Errorf("READY=1 from pid %d, ready for pid %d", pidOf(sent), pidOf(ready))
	}
	st := p.status()
	if !st.Ready || !strings.HasPrefix(st.DaemonStatus, "serving on ") {
		t.Errorf("/status: ready %v, daemon_status %q", st.Ready, st.DaemonStatus)
	}
	sock, ok := childNotifySocket(t, pidOf(ready))
	if !ok || !strings.HasPrefix(sock, "@oxios-init-notify-") {
		t.Errorf("the daemon's NOTIFY_SOCKET is %q (set: %v), want oxios-init's own", sock, ok)
	}
	if n := p.metric(`oxios_init_probe_results_total{probe="readiness",result="failure"}`); n > 2 {
		t.Errorf("%v failed readiness probes while waiting for READY=1: notify:// polled", n)
	}
}

// READY=1 from a process outside the supervised tree is ignored (logged
// at debug level), and the daemon that never sends it is never ready.
func TestIntegrationNotifyForgedRefused(t *testing.T) {
	p := startInit(t, []string{"-v", "--readiness", "notify://"})
	next, opened := p.waitLog(0, "notify socket for the daemon listening", nil, 20*time.Second)
	sock, _ := opened.fields["addr"].(string)
	c, err := net.Dial("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "READY=1")
	p.waitLog(next, "datagram ignored", map[string]any{"reason": "sender outside the supervised tree"}, 10*time.Second)
	if st := p.status(); st.Ready {
		t.Fatal("ready after a forged READY=1")
	}
	if !p.noLog("readiness changed") {
		// Only "ready": false transitions could be logged; none is expected.
		t.Error("readiness changed after a forged READY=1")
	}
}

// READY=1 followed by the daemon's death is not ready; the restarted
// daemon is ready only once it has sent READY=1 itself.
func TestIntegrationNotifyReadyThenDeath(t *testing.T) {
	p := startInit(t, []string{"--restart", "always", "--backoff-initial", "10ms", "--readiness", "notify://"},
		"OXIOS_DEMO_SD_NOTIFY=1", "OXIOS_DEMO_EXIT_AFTER=1s", "OXIOS_DEMO_EXIT_CODE=3")
	next, first := p.waitLog(0, "readiness changed", readyTrue, 20*time.Second)
	next, _ = p.waitLog(next, "readiness changed", readyFalse, 10*time.Second)
	next, sent := p.waitLog(next, "daemon sent READY=1", nil, 10*time.Second)
	_, again := p.waitLog(next, "readiness changed", readyTrue, 10*time.Second)
	if pidOf(sent) == pidOf(first) || pidOf(again) != pidOf(sent) {
		t.Errorf("first life pid %d; READY=1 from %d; ready again for %d", pidOf(first), pidOf(sent), pidOf(again))
	}
}

// notify+http: READY=1, then the http probe confirms it.
func TestIntegrationNotifyConfirmed(t *testing.T) {
	p := startInit(t, []string{"--readiness", "notify+http://DEMO/health/ready"}, "OXIOS_DEMO_SD_NOTIFY=1")
	next, _ := p.waitLog(0, "daemon sent READY=1", nil, 20*time.Second)
	_, e := p.waitLog(next, "readiness changed", readyTrue, 10*time.Second)
	_ = e
	if st := p.status(); st.Probes["readiness"].Detail != "HTTP 200" {
		t.Errorf("readiness detail %q, want the confirming GET's", st.Probes["readiness"].Detail)
	}
}
