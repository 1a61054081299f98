package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// memLoad is one memory measurement's workload.
type memLoad struct {
	name     string        // in the table
	demo     string        // the daemon supervised: bin/oxios-demo
	period   time.Duration // oxios-init's probe period
	requests int           // requests to oxios-init's health endpoint
	hold     time.Duration // then probes run this long before the reading
}

// memFigures is what /proc/PID/status says of the init, in KiB, and
// for oxios-init the Go runtime's collections (GODEBUG=gctrace=1); -1
// for the others.
type memFigures struct{ hwm, rss, anon, file, gcs int }

// The image's default probes (Containerfile), pointed at the demo's port.
func probeEnv(port int, period time.Duration) []string {
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	return []string{
		"OXIOS_INIT_REWRITE=15:2", "OXIOS_INIT_GRACE=10s",
		"OXIOS_INIT_READINESS=" + base + "/health/ready",
		"OXIOS_INIT_LIVENESS=" + base + "/health",
		"OXIOS_INIT_READINESS_PERIOD=" + period.String(),
		"OXIOS_INIT_LIVENESS_PERIOD=" + period.String(),
	}
}

// endpointPaths are asked in turn: the kubelet's and oxios's questions.
var endpointPaths = []string{"/readyz", "/livez", "/status", "/metrics"}

// memoryOf starts INIT -- demo with the workload, waits for READY=1 on
// NOTIFY_SOCKET (oxios-init's own; tini and dumb-init pass the demo's
// through), asks oxios-init's endpoint the requests, lets the probes run
// for hold, and reads the init's memory.
func memoryOf(in initSpec, w memLoad) (memFigures, error) {
	dir, err := os.MkdirTemp("", "bench-init-mem")
	if err != nil {
		return memFigures{}, err
	}
	defer os.RemoveAll(dir)
	notify := filepath.Join(dir, "notify.sock")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		return memFigures{}, fmt.Errorf("notify socket %s: %w", notify, err)
	}
	defer nc.Close()
	port, err := freePort()
	if err != nil {
		return memFigures{}, err
	}
	health := filepath.Join(dir, "health.sock")
	env := append(os.Environ(), "NOTIFY_SOCKET="+notify, "OXIOS_DEMO_SD_NOTIFY=1",
		"OXIOS_DEMO_LISTEN=127.0.0.1:"+strconv.Itoa(port))
	oxios := in.name == "oxios-init"
	argv := append(in.argv[1:], w.demo)
	gcs := &gcCounter{}
	if oxios {
		env = append(env, probeEnv(port, w.period)...)
		env = append(env, "OXIOS_INIT_HEALTH_LISTEN=unix:"+health, "GODEBUG=gctrace=1")
		// The demo, also Go, would print collections of its own on the
		// same stderr: env execs it (the same PID) without GODEBUG.
		argv = append(in.argv[1:], "env", "-u", "GODEBUG", w.demo)
	}
	cmd := exec.Command(in.argv[0], argv...)
	cmd.Env = env
	cmd.Stderr = gcs
	if err := cmd.Start(); err != nil {
		return memFigures{}, fmt.Errorf("%s: %w", in.name, err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	if err := waitReady(nc, 30*time.Second); err != nil {
		return memFigures{}, fmt.Errorf("%s: %w", in.name, err)
	}
	if oxios {
		for i := 0; i < w.requests; i++ {
			if err := ask(health, endpointPaths[i%len(endpointPaths)]); err != nil {
				return memFigures{}, fmt.Errorf("%s: %w", in.name, err)
			}
		}
	}
	time.Sleep(w.hold) // the measurement window: probes keep running
	m, err := procMemory(cmd.Process.Pid)
	m.gcs = -1
	if oxios {
		m.gcs = gcs.count()
	}
	return m, err
}

// gcCounter counts the Go runtime's gctrace lines ("gc N @...") written
// to it.
type gcCounter struct {
	mu   sync.Mutex
	line []byte // the current line's start, up to 3 bytes
	n    int
}

func (g *gcCounter) Write(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range b {
		if c == '\n' {
			g.line = g.line[:0]
			continue
		}
		if len(g.line) < 3 {
			if g.line = append(g.line, c); string(g.line) == "gc " {
				g.n++
			}
		}
	}
	return len(b), nil
}

func (g *gcCounter) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady reads NOTIFY_SOCKET datagrams until one says READY=1.
func waitReady(c *net.UnixConn, within time.Duration) error {
	c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("waiting for READY=1: %w", err)
		}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			if l == "READY=1" {
				return nil
			}
		}
	}
}

// ask GETs path from the endpoint on the unix socket sock; any status
// will do (a 503 is an answer too), a failed exchange will not.
func ask(sock, path string) error {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return fmt.Errorf("health endpoint %s: %w", sock, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return fmt.Errorf("health endpoint %s: %w", sock, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 ") {
		return fmt.Errorf("health endpoint %s%s: status line %q: %v", sock, path, line, err)
	}
	_, err = io.Copy(io.Discard, c)
	return err
}

// procMemory reads VmHWM, VmRSS, RssAnon and RssFile of pid.
func procMemory(pid int) (memFigures, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	b, err := os.ReadFile(path)
	if err != nil {
		return memFigures{}, err
	}
	var m memFigures
	fields := map[string]*int{"VmHWM:": &m.hwm, "VmRSS:": &m.rss, "RssAnon:": &m.anon, "RssFile:": &m.file}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && fields[f[0]] != nil {
			*fields[f[0]], _ = strconv.Atoi(f[1])
		}
	}
	if m.hwm == 0 {
		return m, fmt.Errorf("%s: no VmHWM", path)
	}
	return m, nil
}

// memoryMedians runs the workload runs times per init, interleaved, and
// returns each figure's median per init.
func memoryMedians(inits []initSpec, w memLoad, runs int) (map[string]memFigures, error) {
	all := map[string][]memFigures{}
	for i := 0; i < runs; i++ {
		for _, in := range inits {
			m, err := memoryOf(in, w)
			if err != nil {
				return nil, err
			}
			all[in.name] = append(all[in.name], m)
		}
	}
	out := map[string]memFigures{}
	for name, ms := range all {
		med := func(get func(memFigures) int) int {
			v := make([]int, len(ms))
			for i, m := range ms {
				v[i] = get(m)
			}
			sort.Ints(v)
			return v[len(v)/2]
		}
		out[name] = memFigures{
			hwm:  med(func(m memFigures) int { return m.hwm }),
			rss:  med(func(m memFigures) int { return m.rss }),
			anon: med(func(m memFigures) int { return m.anon }),
			file: med(func(m memFigures) int { return m.file }),
			gcs:  med(func(m memFigures) int { return m.gcs }),
		}
	}
	return out, nil
}

// memoryTable prints the memory rows of each workload: oxios-init with
// its probes and endpoint, tini and dumb-init supervising the same daemon
// for scale.
func memoryTable(w io.Writer, loads []memLoad, figs []map[string]memFigures) {
	fmt.Fprintf(w, "\n%-52s %12s %12s %12s %11s\n", "memory, supervising the demo (median)", "oxios-init", "tini", "dumb-init", "oxios/tini")
	mib := func(k int) string { return strconv.FormatFloat(float64(k)/1024, 'f', 2, 64) + " MiB" }
	for i, l := range loads {
		set := figs[i]
		row := func(name string, get func(memFigures) int) {
			o, t, d := get(set["oxios-init"]), get(set["tini"]), get(set["dumb-init"])
			fmt.Fprintf(w, "%-52s %12s %12s %12s %10.2fx\n", name+", "+l.name, mib(o), mib(t), mib(d), float64(o)/float64(max(t, 1)))
		}
		row("VmHWM", func(m memFigures) int { return m.hwm })
		row("RssAnon", func(m memFigures) int { return m.anon })
		row("RssFile", func(m memFigures) int { return m.file })
		fmt.Fprintf(w, "%-52s %12d\n", "Go collections, "+l.name, set["oxios-init"].gcs)
	}
	fmt.Fprintln(w, "targets: oxios-init VmHWM <= 4 MiB with probes running, RssAnon <= 1 MiB")
}
