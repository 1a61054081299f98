// Command bench-health measures how soon readiness follows a daemon's
// listen(): listen://, tcp://, http:// and notify:// (all through
// bin/oxios-init with the same, default settings) against the old layer's
// 200 ms connect-poll loop. The daemon is this binary re-executed
// (-daemon): it sleeps a random delay, listens, and reports the time of
// listen() over a datagram socket; for http:// it then answers every
// request with 200, for notify:// it sends READY=1 to its NOTIFY_SOCKET
// right after listen(). oxios-init reports readiness through sd_notify
// (NOTIFY_SOCKET), the same instant /readyz turns 200 (checked after each
// run), so the lag is measured without a poll of our own.
//
// Figures: p50/p99 lag, CPU of the waiting process (oxios-init, or the
// poller) from the daemon's start to readiness as % of one core (from
// /proc/PID/task/*/schedstat, nanosecond run times), and oxios-init's RSS.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stamp is CLOCK_REALTIME in ns: the clock the kernel stamps received
// datagrams with (SO_TIMESTAMPNS), so that the benchmark's own scheduling
// delay in reading READY=1 is not counted as oxios-init's lag.
func stamp() int64 { return time.Now().UnixNano() }

// readStamped reads one datagram with its kernel receive timestamp.
func readStamped(c *net.UnixConn, buf, oob []byte) (int, int64, error) {
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return 0, 0, err
	}
	at := stamp()
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			at = ts.Nano()
		}
	}
	return n, at, nil
}

func main() {
	daemon := flag.Bool("daemon", false, "internal: run as the benchmark daemon")
	poller := flag.Bool("poller", false, "internal: run the old 200 ms connect-poll loop")
	initBin := flag.String("init", "bin/oxios-init", "oxios-init binary")
	runs := flag.Int("n", 40, "runs per method")
	maxDelay := flag.Duration("max-delay", 1500*time.Millisecond, "listen delay is uniform in [50ms, max-delay]")
	flag.Parse()
	switch {
	case *daemon:
		runDaemon()
		return
	case *poller:
		runPoller()
		return
	}
	if err := bench(*initBin, *runs, *maxDelay); err != nil {
		fmt.Fprintln(os.Stderr, "bench-health:", err)
		os.Exit(1)
	}
}

// runDaemon: report start, sleep BENCH_DELAY, listen on BENCH_PORT, report
// listen, then wait to be killed (never accepting: readiness must not need it).
func runDaemon() {
	sock := os.Getenv("BENCH_EVENTS")
	send := func(msg string) {
		c, err := net.Dial("unixgram", sock)
		if err == nil {
			c.Write([]byte(msg))
			c.Close()
		}
	}
	send("start " + strconv.FormatInt(stamp(), 10))
	d, _ := time.ParseDuration(os.Getenv("BENCH_DELAY"))
	time.Sleep(d)
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("BENCH_PORT"))
	t := stamp()
	if err != nil {
		send("error " + err.Error())
		os.Exit(1)
	}
	send("listen " + strconv.FormatInt(t, 10))
	defer ln.Close()
	if os.Getenv("BENCH_NOTIFY") == "1" {
		if c, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET")); err == nil {
			c.Write([]byte("READY=1"))
			c.Close()
		}
	}
	if os.Getenv("BENCH_SERVE") == "1" {
		go serve200(ln)
	}
	time.Sleep(time.Hour) // killed by the benchmark; a bare select{} would trip the deadlock detector
}

// serve200 answers every connection with an empty 200 and closes it.
func serve200(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Second))
			bufio.NewReader(c).ReadString('\n') // the request line is enough
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		}()
	}
}

// runPoller is the old layer's wait_until_listening: connect with a 200 ms
// timeout, sleep 200 ms, until it connects.
func runPoller() {
	addr := "127.0.0.1:" + os.Getenv("BENCH_PORT")
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			t := stamp()
			c, err := net.Dial("unixgram", os.Getenv("BENCH_EVENTS"))
			if err == nil {
				c.Write([]byte("READY=1 " + strconv.FormatInt(t, 10)))
				c.Close()
			}
			time.Sleep(time.Hour) // killed by the benchmark; a bare select{} would trip the deadlock detector
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type sample struct {
	lag     time.Duration
	wait    time.Duration // daemon start -> ready
	cpu     time.Duration // waiting process's CPU over wait
	rssKiB  int
	hwmKiB  int
	readyOK bool
}

func bench(initBin string, runs int, maxDelay time.Duration) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if _, err := os.Stat(initBin); err != nil {
		return fmt.Errorf("oxios-init binary %s: %w (run make build)", initBin, err)
	}
	dir, err := os.MkdirTemp("", "bench-health")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	methods := []string{"listen://", "tcp://", "http://", "notify://", "poll-200ms"}
	res := map[string][]sample{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < runs; i++ {
		delay := 50*time.Millisecond + time.Duration(rng.Int64N(int64(maxDelay-50*time.Millisecond)))
		for _, m := range methods { // interleaved: the same machine load for each
			s, err := runOne(self, initBin, dir, m, delay)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", m, i, err)
			}
			res[m] = append(res[m], s)
		}
	}
	report(os.Stdout, methods, res, runs, maxDelay)
	return nil
}

func runOne(self, initBin, dir, method string, delay time.Duration) (sample, error) {
	events := filepath.Join(dir, "events")
	os.Remove(events)
	ec, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: events, Net: "unixgram"})
	if err != nil {
		return sample{}, err
	}
	defer ec.Close()
	if rc, err := ec.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) })
	}
	port := freePort()
	health := filepath.Join(dir, "health.sock")
	env := append(os.Environ(), "BENCH_EVENTS="+events, "BENCH_PORT="+strconv.Itoa(port), "BENCH_DELAY="+delay.String(),
		"NOTIFY_SOCKET="+events)
	var cmd *exec.Cmd
	switch method {
	case "poll-200ms":
		// The daemon and the poller are separate processes, as they were.
		d := exec.Command(self, "-daemon")
		d.Env = env
		if err := d.Start(); err != nil {
			return sample{}, err
		}
		defer func() { d.Process.Kill(); d.Wait() }()
		cmd = exec.Command(self, "-poller")
	default:
		scheme, _, _ := strings.Cut(method, "://")
		spec := scheme + "://127.0.0.1:" + strconv.Itoa(port)
		switch scheme {
		case "http":
			spec += "/"
			env = append(env, "BENCH_SERVE=1")
		case "notify":
			spec = "notify://"
			env = append(env, "BENCH_NOTIFY=1")
		}
		cmd = exec.Command(initBin, "--readiness", spec, "--health-listen", "unix:"+health, "--grace", "1s", "--", self, "-daemon")
	}
	cmd.Env = env
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	pid := cmd.Process.Pid

	var s sample
	var tStart, tListen, tReady int64
	var cpuStart time.Duration
	buf, oob := make([]byte, 512), make([]byte, 512)
	ec.SetReadDeadline(time.Now().Add(delay + 60*time.Second))
	// READY=1 can overtake the daemon's own "listen" report (it is
	// stamped at listen() but sent after): read until all three are in.
	for tReady == 0 || tListen == 0 || tStart == 0 {
		n, now, err := readStamped(ec, buf, oob)
		if err != nil {
			return s, fmt.Errorf("waiting for events: %w", err)
		}
		f := strings.Fields(string(buf[:n]))
		switch {
		case len(f) == 2 && f[0] == "start":
			tStart, _ = strconv.ParseInt(f[1], 10, 64)
			cpuStart = cpuTime(pid)
		case len(f) == 2 && f[0] == "listen":
			tListen, _ = strconv.ParseInt(f[1], 10, 64)
		case len(f) >= 1 && f[0] == "error":
			return s, fmt.Errorf("daemon: %s", buf[:n])
		case len(f) >= 1 && f[0] == "READY=1":
			tReady = now
			if len(f) == 2 { // the poller stamps its own connect
				tReady, _ = strconv.ParseInt(f[1], 10, 64)
			}
			s.cpu = cpuTime(pid) - cpuStart
		}
	}
	if tListen == 0 || tStart == 0 {
		return s, fmt.Errorf("ready before listen/start was reported")
	}
	s.lag = time.Duration(tReady - tListen)
	s.wait = time.Duration(tReady - tStart)
	s.rssKiB, s.hwmKiB = rss(pid)
	if method != "poll-200ms" {
		s.readyOK = readyz(health)
		if !s.readyOK {
			return s, fmt.Errorf("READY=1 sent but /readyz is not 200")
		}
	}
	return s, nil
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// cpuTime sums the on-CPU time of every thread of pid (schedstat field 1, ns).
func cpuTime(pid int) time.Duration {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/schedstat")
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			sum += n
		}
	}
	return time.Duration(sum)
}

func rss(pid int) (rss, hwm int) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var v int
		if n, _ := fmt.Sscanf(sc.Text(), "VmRSS: %d kB", &v); n == 1 {
			rss = v
		}
		if n, _ := fmt.Sscanf(sc.Text(), "VmHWM: %d kB", &v); n == 1 {
			hwm = v
		}
	}
	return rss, hwm
}

func readyz(sock string) bool {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://health/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	// nearest rank
	k := int(p/100*float64(len(s))+0.999999) - 1
	if k < 0 {
		k = 0
	}
	return s[k]
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }

func report(w io.Writer, methods []string, res map[string][]sample, runs int, maxDelay time.Duration) {
	type row struct {
		p50, p90, p99, max time.Duration
		cpuPct             float64
		rss, hwm           int
	}
	rows := map[string]row{}
	for _, m := range methods {
		var lags []time.Duration
		var cpu, wait time.Duration
		var r row
		for _, s := range res[m] {
			lags = append(lags, s.lag)
			cpu += s.cpu
			wait += s.wait
			r.rss = max(r.rss, s.rssKiB)
			r.hwm = max(r.hwm, s.hwmKiB)
		}
		r.p50, r.p90, r.p99, r.max = pct(lags, 50), pct(lags, 90), pct(lags, 99), pct(lags, 100)
		r.cpuPct = 100 * float64(cpu) / float64(wait)
		rows[m] = r
	}
	base := rows["listen://"]
	fmt.Fprintf(w, "bench-health: %d runs per method, listen delay uniform in [50ms, %v], readiness defaults (period 10s, timeout 1s, failure 3)\n\n", runs, maxDelay)
	fmt.Fprintf(w, "%-14s %9s %9s %9s %9s %11s %11s %11s %9s %9s\n", "method", "p50 ms", "p90 ms", "p99 ms", "max ms", "p50/listen", "p99/listen", "CPU % core", "RSS MiB", "peak MiB")
	for _, m := range methods {
		r := rows[m]
		rssS, hwmS := "-", "-"
		if m != "poll-200ms" {
			rssS, hwmS = strconv.FormatFloat(float64(r.rss)/1024, 'f', 2, 64), strconv.FormatFloat(float64(r.hwm)/1024, 'f', 2, 64)
		}
		fmt.Fprintf(w, "%-14s %9s %9s %9s %9s %10.1fx %10.1fx %11.3f %9s %9s\n", m, ms(r.p50), ms(r.p90), ms(r.p99), ms(r.max),
			float64(r.p50)/float64(max(base.p50, 1)), float64(r.p99)/float64(max(base.p99, 1)), r.cpuPct, rssS, hwmS)
	}
	fmt.Fprintln(w)
	check := func(name string, ok bool, got string) {
		verdict := "PASS"
		if !ok {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "%s  %s: %s\n", verdict, name, got)
	}
	for _, m := range []string{"listen://", "tcp://", "http://", "notify://"} {
		check(m+" p99 lag <= 10 ms", rows[m].p99 <= 10*time.Millisecond, ms(rows[m].p99)+" ms")
	}
	// The 2 % target is for a long wait (bench-runtime's 5 s row): here
	// the waits are short, and the first 50 ms, when tcp:// and http://
	// look every 2 ms, weigh more. listen:// keeps its check as before.
	check("listen:// CPU while waiting <= 2% of one core", base.cpuPct <= 2, strconv.FormatFloat(base.cpuPct, 'f', 3, 64)+" %")
	check("oxios-init RSS with the health endpoint <= 6 MiB", base.hwm <= 6*1024, strconv.FormatFloat(float64(base.hwm)/1024, 'f', 2, 64)+" MiB peak")
}
