// Command bench-init compares oxios-init with tini and dumb-init, run side
// by side in one process (scripts/bench-init.sh, `make bench-init`):
// start-up wall time of `INIT -- /bin/true`, VmHWM while supervising a
// sleeping child, memory while supervising the demo daemon with the
// image's probes and answering its health endpoint (memory.go),
// signal-forwarding latency from the sender to the child's handler, and
// the time PID 1 takes to reap 10,000 orphans.
// The same binary is also the helper child of each measurement.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type initSpec struct {
	name string
	argv []string // before the command, e.g. {"tini", "-s", "--"}
}

func main() {
	switch os.Getenv("BENCH_INIT_HELPER") {
	case "sigchild":
		sigChild()
		return
	case "reapmain":
		reapMain()
		return
	case "zombies":
		zombies()
		return
	}
	oxios := flag.String("oxios-init", "bin/oxios-init", "oxios-init binary")
	tini := flag.String("tini", "tini", "tini binary")
	dumb := flag.String("dumb-init", "dumb-init", "dumb-init binary")
	runs := flag.Int("runs", 300, "runs of INIT -- /bin/true per init")
	sigs := flag.Int("signals", 1000, "signals forwarded per init")
	orphans := flag.Int("orphans", 10000, "orphans to reap per run")
	reapRuns := flag.Int("reap-runs", 7, "reap runs per init, interleaved (median reported)")
	demo := flag.String("demo", "bin/oxios-demo", "daemon supervised in the memory rows")
	memRuns := flag.Int("mem-runs", 5, "runs per init of each memory workload, interleaved (median reported); 0 skips the memory rows")
	memRequests := flag.Int("mem-requests", 400, "health endpoint requests in the busy memory workload")
	memPeriod := flag.Duration("mem-period", 100*time.Millisecond, "probe period in the busy memory workload")
	memLong := flag.Int("mem-long-requests", 4000, "health endpoint requests in the long memory workload, enough for several collections by the Go runtime; 0 skips it")
	memHold := flag.Duration("mem-hold", 2*time.Second, "probes run this long before memory is read")
	memOnly := flag.Bool("mem-only", false, "only the memory rows")
	flag.Parse()

	inits := []initSpec{
		{"oxios-init", []string{abs(*oxios), "-s", "--"}},
		{"tini", []string{abs(*tini), "-s", "--"}},
		{"dumb-init", []string{abs(*dumb)}},
	}
	self, _ := os.Executable()

	if *memRuns > 0 {
		loads := []memLoad{
			{name: "probes every 10 s, no requests", period: 10 * time.Second},
			{name: fmt.Sprintf("probes every %v + %d requests", *memPeriod, *memRequests), period: *memPeriod, requests: *memRequests},
		}
		if *memLong > 0 {
			loads = append(loads, memLoad{name: fmt.Sprintf("probes every %v + %d requests", *memPeriod, *memLong), period: *memPeriod, requests: *memLong})
		}
		fmt.Fprintf(os.Stderr, "bench-init: memory supervising %s, %d runs per init...\n", *demo, *memRuns)
		figs := make([]map[string]memFigures, len(loads))
		for i := range loads {
			loads[i].demo, loads[i].hold = abs(*demo), *memHold
			var err error
			if figs[i], err = memoryMedians(inits, loads[i], *memRuns); err != nil {
				fmt.Fprintf(os.Stderr, "bench-init: memory: %v\n", err)
				os.Exit(1)
			}
		}
		if *memOnly {
			memoryTable(os.Stdout, loads, figs)
			return
		}
		defer memoryTable(os.Stdout, loads, figs)
	}

	fmt.Fprintf(os.Stderr, "bench-init: %d x /bin/true per init...\n", *runs)
	startup := startupTimes(inits, *runs)
	fmt.Fprintf(os.Stderr, "bench-init: VmHWM...\n")
	rss := map[string]int{}
	for _, in := range inits {
		rss[in.name] = vmHWM(in)
	}
	fmt.Fprintf(os.Stderr, "bench-init: %d signals per init...\n", *sigs)
	lat := map[string][]time.Duration{}
	for _, in := range inits {
		lat[in.name] = signalLatency(in, self, *sigs)
	}
	fmt.Fprintf(os.Stderr, "bench-init: reaping %d orphans as PID 1, %d runs per init...\n", *orphans, *reapRuns)
	// Rounds interleave the inits, so that a slow spell of a shared
	// machine falls on all of them alike.
	reapDs := map[string][]time.Duration{}
	for i := 0; i < *reapRuns; i++ {
		for _, in := range inits {
			reapDs[in.name] = append(reapDs[in.name], reapTime(in, self, *orphans))
		}
	}
	reap := map[string]time.Duration{}
	for name, ds := range reapDs {
		reap[name] = pct(ds, 50)
	}

	// The table.
	fmt.Printf("\n%-40s %14s %14s %14s %12s %12s\n", "metric", "oxios-init", "tini", "dumb-init", "oxios/tini", "dumb/tini")
	row := func(name string, f func(string) float64, unit string, format string) {
		o, t, d := f("oxios-init"), f("tini"), f("dumb-init")
		fmt.Printf("%-40s %14s %14s %14s %11.2fx %11.2fx\n", name, fmt.Sprintf(format, o)+unit, fmt.Sprintf(format, t)+unit, fmt.Sprintf(format, d)+unit, o/t, d/t)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	row(fmt.Sprintf("INIT -- /bin/true median (n=%d)", *runs), func(n string) float64 { return ms(pct(startup[n], 50)) }, " ms", "%.2f")
	row(fmt.Sprintf("INIT -- /bin/true p99 (n=%d)", *runs), func(n string) float64 { return ms(pct(startup[n], 99)) }, " ms", "%.2f")
	row("VmHWM supervising sleep", func(n string) float64 { return float64(rss[n]) / 1024 }, " MiB", "%.2f")
	row(fmt.Sprintf("signal forward p50 (n=%d)", *sigs), func(n string) float64 { return us(pct(lat[n], 50)) }, " us", "%.0f")
	row(fmt.Sprintf("signal forward p99 (n=%d)", *sigs), func(n string) float64 { return us(pct(lat[n], 99)) }, " us", "%.0f")
	row(fmt.Sprintf("reap %d orphans as PID 1 (median of %d)", *orphans, *reapRuns), func(n string) float64 { return ms(reap[n]) }, " ms", "%.1f")
	fmt.Printf("\n/bin/true alone: median %.2f ms (reference)\n", ms(pct(startupBare(*runs), 50)))
	fmt.Println("targets: start-up <= 3.5x tini (standard Go only in PID 1), forward p99 <= 1 ms, reaping at least as fast as tini")
}

func abs(p string) string {
	if !strings.Contains(p, "/") {
		if lp, err := exec.LookPath(p); err == nil {
			return lp
		}
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

func run(argv []string) time.Duration {
	t := time.Now()
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "%q: %v\n", argv, err)
		os.Exit(1)
	}
	return time.Since(t)
}

// startupTimes interleaves the inits run by run, so that machine noise
// falls on all of them alike.
func startupTimes(inits []initSpec, n int) map[string][]time.Duration {
	out := map[string][]time.Duration{}
	for _, in := range inits { // warm the page cache
		run(append(in.argv, "/bin/true"))
	}
	for i := 0; i < n; i++ {
		for _, in := range inits {
			out[in.name] = append(out[in.name], run(append(append([]string(nil), in.argv...), "/bin/true")))
		}
	}
	return out
}

func startupBare(n int) []time.Duration {
	var out []time.Duration
	for i := 0; i < n; i++ {
		out = append(out, run([]string{"/bin/true"}))
	}
	return out
}

// vmHWM starts INIT -- sleep, waits until the child runs, and reads the
// init's peak RSS in KiB.
func vmHWM(in initSpec) int {
	cmd := exec.Command(in.argv[0], append(in.argv[1:], "sleep", "1000")...)
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	pid := cmd.Process.Pid
	for i := 0; i < 2000; i++ {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		n := 0
		for _, t := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
			n += len(strings.Fields(string(b)))
		}
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let it settle into its wait loop
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// signalLatency sends n SIGUSR1 to the init, one at a time, and takes the
// time from just before kill(2) to the child's handler, which writes its
// CLOCK_MONOTONIC reading to fd 3.
func signalLatency(in initSpec, self string, n int) []time.Duration {
	r, w, _ := os.Pipe()
	cmd := exec.Command(in.argv[0], append(in.argv[1:], self)...)
	cmd.Env = append(os.Environ(), "BENCH_INIT_HELPER=sigchild")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	w.Close()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	buf := make([]byte, 8)
	if _, err := r.Read(buf); err != nil { // "ready"
		panic(err)
	}
	var out []time.Duration
	for i := 0; i < n; i++ {
		t0 := monoNow()
		syscall.Kill(cmd.Process.Pid, syscall.SIGUSR1)
		if _, err := io.ReadFull(r, buf); err != nil {
			panic(err)
		}
		t1 := int64(binary.LittleEndian.Uint64(buf))
		out = append(out, time.Duration(t1-t0))
	}
	return out
}

func sigChild() {
	c := make(chan os.Signal, 16)
	signal.Notify(c, syscall.SIGUSR1, syscall.SIGTERM)
	out := os.NewFile(3, "out")
	buf := make([]byte, 8)
	out.Write(buf) // ready
	for s := range c {
		if s == syscall.SIGTERM {
			os.Exit(0)
		}
		binary.LittleEndian.PutUint64(buf, uint64(monoNow()))
		out.Write(buf)
	}
}

// reapTime runs `unshare --pid --fork --mount-proc INIT -- self` where
// self (reapmain) makes n zombies, orphans them all at once, and reports
// how long until PID 1 has reaped every one.
func reapTime(in initSpec, self string, n int) time.Duration {
	argv := append([]string{"unshare", "--pid", "--fork", "--mount-proc"}, in.argv...)
	argv = append(argv, self)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "BENCH_INIT_HELPER=reapmain", "BENCH_INIT_ORPHANS="+strconv.Itoa(n))
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s reap: %v\n", in.name, err)
		os.Exit(1)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s reap: output %q\n", in.name, out)
		os.Exit(1)
	}
	return time.Duration(ns)
}

// reapMain (the init's child, as PID 2) starts a process that forks n
// children which exit at once and are never waited for: n zombies. When
// that process exits, all n are reparented to PID 1 together. The clock
// starts when it says it is about to exit and stops when PID 1 has no
// child left but this one (polled every 100us through /proc).
func reapMain() {
	self, _ := os.Executable()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "BENCH_INIT_HELPER=zombies")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	bufio.NewReader(stdout).ReadString('\n') // zombies made, about to exit
	// The clock starts before that process exits: an init that reaps while
	// we are still being woken up must not get a head start.
	t0 := time.Now()
	cmd.Wait()
	me := strconv.Itoa(os.Getpid())
	for {
		// A child belongs to the thread that forked it, or that it was
		// reparented to: read every thread's list.
		tasks, _ := os.ReadDir("/proc/1/task")
		var f []string
		for _, t := range tasks {
			b, _ := os.ReadFile("/proc/1/task/" + t.Name() + "/children")
			f = append(f, strings.Fields(string(b))...)
		}
		if len(f) == 1 && f[0] == me {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	fmt.Println(int64(time.Since(t0)))
}

func zombies() {
	n, _ := strconv.Atoi(os.Getenv("BENCH_INIT_ORPHANS"))
	attr := &syscall.ProcAttr{Files: []uintptr{0, 2, 2}}
	for i := 0; i < n; i++ {
		if _, err := syscall.ForkExec("/bin/true", []string{"true"}, attr); err != nil {
			fmt.Fprintln(os.Stderr, "fork:", err)
			os.Exit(1)
		}
	}
	// Wait until every child has exited (is a zombie) before exiting, so
	// that the reparenting happens in one go.
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", os.Getpid(), os.Getpid()))
		alive := 0
		for _, p := range strings.Fields(string(b)) {
			st, _ := os.ReadFile("/proc/" + p + "/stat")
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && len(st) > i+2 && st[i+2] != 'Z' {
				alive++
			}
		}
		if alive == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Println("done")
}
