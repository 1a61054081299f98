//go:build linux

// Package logs_test measures how fast a daemon can log through oxios' log
// driver (bin/oxios-logd, run by containerd's shim as a logging binary)
// against containerd's own file:// logging (the shim copies the pipes into
// the file), in one process: the same private containerd, image, writer
// and disk, rounds interleaved so that machine noise hits both alike.
//
// The writer (./writer, bind-mounted into the image's rootfs) writes
// numbered lines to stdout and states after them how long its writes took:
// the daemon's own view of how long logging held it up. The driver's CPU
// time is read from /proc while it runs: oxios-logd's own, and for
// file:// the shim's (it is the shim that copies).
//
// Run with `make bench-logs` (scripts/bench-logs.sh).
package logs_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
	"github.com/a7garden/oxios/runtime/logdriver"
)

const ns = "oxios-bench"

// workload is one table: how much the writer writes, and how.
type workload struct {
	title string
	mib   int // MiB of lines
	line  int // bytes per line
	write int // bytes per write()
}

// path is one way of logging: file:// or a logging binary.
type path struct {
	name string
	logd string // "" = containerd's file://
}

type bench struct {
	b      *testing.B
	cl     *client.Client
	ctx    context.Context
	img    client.Image
	writer string
	dir    string
	n      int
}

// sample is one run: the writer's time, the driver's and the shim's CPU.
type sample struct {
	took      time.Duration
	driverCPU time.Duration
	shimCPU   time.Duration
}

func BenchmarkLogs(b *testing.B) {
	testenv.RequireRoot(b)
	x := setup(b)
	paths := []path{{"containerd file://", ""}, {"oxios-logd", testenv.Bin(b, "oxios-logd")}}
	if old := os.Getenv("LOGD_B"); old != "" {
		paths = append(paths, path{"oxios-logd " + filepath.Base(old), old})
	}
	loads := []workload{
		{fmt.Sprintf("%d MiB of %d-byte lines, 64 KiB per write()", envInt("MIB", 512), 100), envInt("MIB", 512), 100, 64 << 10},
		{fmt.Sprintf("%d MiB of %d-byte lines, one write() per line", envInt("LINE_MIB", 64), 100), envInt("LINE_MIB", 64), 100, 100},
	}
	rounds := envInt("ROUNDS", 3)
	b.ResetTimer()
	for _, w := range loads {
		got := map[string][]sample{}
		for i := 0; i < rounds; i++ {
			for _, p := range paths {
				got[p.name] = append(got[p.name], x.run(p, w))
			}
		}
		report(w, paths, got, rounds)
	}
}

func setup(b *testing.B) *bench {
	archive := testenv.ImageArchive(b)
	addr := ctrtest.Start(b)
	cl, err := client.New(addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	x := &bench{b: b, cl: cl, ctx: namespaces.WithNamespace(context.Background(), ns), dir: b.TempDir()}
	if d := os.Getenv("LOG_DIR"); d != "" {
		x.dir = d
	}
	x.writer = filepath.Join(b.TempDir(), "writer")
	build := exec.Command("go", "build", "-o", x.writer, "./writer")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build ./writer: %v\n%s", err, out)
	}
	f, err := os.Open(archive)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	imgs, err := cl.Import(x.ctx, f)
	if err != nil || len(imgs) == 0 {
		b.Fatalf("import %s: %v", archive, err)
	}
	x.img = client.NewImage(cl, imgs[0])
	if err := x.img.Unpack(x.ctx, ""); err != nil {
		b.Fatalf("unpack: %v", err)
	}
	return x
}

// run starts the writer in a new container logging through p, waits for
// its exit, checks that the log holds every line, and returns the times.
func (x *bench) run(p path, w workload) sample {
	x.n++
	id := fmt.Sprintf("logs-%d", x.n)
	logPath := filepath.Join(x.dir, id+".log")
	defer os.Remove(logPath)
	c, err := x.cl.NewContainer(x.ctx, id, client.WithImage(x.img), client.WithNewSnapshot(id, x.img),
		client.WithNewSpec(oci.WithImageConfig(x.img),
			oci.WithProcessArgs("/bench-writer", "-mib", strconv.Itoa(w.mib), "-line", strconv.Itoa(w.line), "-write", strconv.Itoa(w.write)),
			oci.WithMounts([]specs.Mount{{Source: x.writer, Destination: "/bench-writer", Type: "bind", Options: []string{"rbind", "ro"}}})))
	if err != nil {
		x.b.Fatal(err)
	}
	defer c.Delete(x.ctx, client.WithSnapshotCleanup)
	creator := cio.LogFile(logPath)
	if p.logd != "" {
		creator = cio.BinaryIO(p.logd, logdriver.Options{Path: logPath}.Args())
	}
	t, err := c.NewTask(x.ctx, creator)
	if err != nil {
		x.b.Fatalf("%s: new task: %v", p.name, err)
	}
	exit, err := t.Wait(x.ctx)
	if err != nil {
		x.b.Fatal(err)
	}
	driver := cpuOf(findProc("\x00file\x00" + logPath + "\x00"))
	shim := cpuOf(findProc("\x00-id\x00" + id + "\x00"))
	if err := t.Start(x.ctx); err != nil {
		x.b.Fatal(err)
	}
	var s sample
	shim0 := shim()
	tick := time.NewTicker(5 * time.Millisecond)
	for done := false; !done; {
		select {
		case st := <-exit:
			if st.ExitCode() != 0 {
				x.b.Fatalf("%s: the writer exited %d", p.name, st.ExitCode())
			}
			done = true
		case <-tick.C:
		}
		s.driverCPU = max(s.driverCPU, driver())
		s.shimCPU = max(s.shimCPU, shim())
	}
	tick.Stop()
	if _, err := t.Delete(x.ctx); err != nil {
		x.b.Fatal(err)
	}
	s.shimCPU -= shim0
	if p.logd == "" {
		s.driverCPU = s.shimCPU // the shim is file://'s driver
	}
	s.took = x.check(p, w, logPath)
	return s
}

var reReport = regexp.MustCompile(`writer: (\d+) lines, \d+ bytes in (\d+) ns`)

// check reads the log back: every line there, in order, and the writer's
// time from its last words.
func (x *bench) check(p path, w workload, logPath string) time.Duration {
	f, err := os.Open(logPath)
	if err != nil {
		x.b.Fatal(err)
	}
	defer f.Close()
	want := int64(w.mib) << 20 / int64(w.line)
	var n int64
	var took time.Duration
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var d logdriver.Decoder
	for sc.Scan() {
		line := sc.Bytes()
		if p.logd != "" {
			// A driver of before the record format writes lines as they
			// came: the Decoder keeps those whole.
			r, ok := d.Record(line)
			if !ok { // a block's header
				continue
			}
			if r.Partial {
				x.b.Fatalf("%s: a line split into parts: %q", p.name, line)
			}
			line = r.Msg
		}
		if m := reReport.FindSubmatch(line); m != nil {
			ns, _ := strconv.ParseInt(string(m[2]), 10, 64)
			took = time.Duration(ns)
			continue
		}
		if !bytes.HasPrefix(line, fmt.Appendf(nil, "line %012d ", n)) {
			x.b.Fatalf("%s: line %d is %.40q", p.name, n, line)
		}
		n++
	}
	if n != want || took == 0 {
		x.b.Fatalf("%s: %d of %d lines in the log (writer's report found: %v)", p.name, n, want, took != 0)
	}
	return took
}

// findProc returns the PID whose command line holds sub, or 0.
func findProc(sub string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(append([]byte{0}, b...), []byte(sub)) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	return 0
}

// cpuOf returns a reader of pid's CPU time (user + system) so far; 0 once
// the process is gone (the caller keeps the largest value seen).
func cpuOf(pid int) func() time.Duration {
	tick := time.Second / 100 // USER_HZ
	return func() time.Duration {
		if pid == 0 {
			return 0
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0
		}
		// Fields after the command name (which may hold spaces): state is
		// field 3, utime 14, stime 15.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(u+s) * tick
	}
}

func report(w workload, paths []path, got map[string][]sample, rounds int) {
	fmt.Printf("\n%s, median of %d rounds:\n\n", w.title, rounds)
	fmt.Println("| log path | MiB/s | vs file:// | driver CPU s/GiB | shim CPU s/GiB |")
	fmt.Println("|---|---|---|---|---|")
	gib := float64(w.mib) / 1024
	var base float64
	for _, p := range paths {
		ss := got[p.name]
		rate := float64(w.mib) / median(ss, func(s sample) time.Duration { return s.took }).Seconds()
		if p.logd == "" {
			base = rate
		}
		fmt.Printf("| %s | %.0f | %.2fx | %.2f | %.2f |\n", p.name, rate, rate/base,
			median(ss, func(s sample) time.Duration { return s.driverCPU }).Seconds()/gib,
			median(ss, func(s sample) time.Duration { return s.shimCPU }).Seconds()/gib)
	}
}

func median(ss []sample, f func(sample) time.Duration) time.Duration {
	v := make([]time.Duration, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
