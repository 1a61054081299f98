//go:build linux

// Package runtime_test benchmarks oxios' container lifecycle against ctr
// on the same image, containerd and runtime, in one process:
//
//	oxios start (image present) until ready   vs  ctr run -d (no readiness wait)
//	                                           vs  ctr run -d + 200 ms connect poll
//	oxios stop until the task is gone          vs  ctr task kill + ctr task rm + ctr rm
//	                                           and the daemon's own exit time
//
// Run with `make bench-runtime` (scripts/bench-runtime.sh).
package runtime_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
	"github.com/a7garden/oxios/runtime/config"
)

const ns = "oxios"

type bench struct {
	b       *testing.B
	oxios   string
	ctr     string
	addr    string
	archive string
	dir     string
	runtime string // OCI runtime binary oxios picks ("" = runc)
	samples map[string][]time.Duration
	rounds  int
}

func BenchmarkRuntime(b *testing.B) {
	testenv.RequireRoot(b)
	x := &bench{
		b:       b,
		oxios:   testenv.Bin(b, "oxios"),
		ctr:     testenv.RequireTool(b, "ctr"),
		archive: testenv.ImageArchive(b),
		addr:    ctrtest.Start(b),
		dir:     b.TempDir(),
		samples: map[string][]time.Duration{},
	}
	x.runtime = config.Default().RuntimeBinary()
	rounds := 10
	if v, err := strconv.Atoi(os.Getenv("ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	x.rounds = rounds
	x.oxiosRound(-1, false) // imports and unpacks the image: not measured
	b.ResetTimer()
	// One benchmark iteration runs every round (-benchtime 1x): the
	// peers interleave round by round, so machine noise hits all alike.
	for i := 0; i < rounds; i++ {
		x.oxiosRound(i, true)
		x.ctrRound(i, false, false)
		x.ctrRound(i, true, false)
		x.ctrRound(i, false, true)
	}
	b.StopTimer()
	x.report()
}

func (x *bench) add(name string, d time.Duration) { x.samples[name] = append(x.samples[name], d) }

func (x *bench) run(name string, args ...string) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		x.b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// oxiosRound: `oxios start` (returns once ready) and `oxios stop`
// (returns once task and container are gone), as a user runs them.
func (x *bench) oxiosRound(i int, measure bool) {
	port := testenv.FreePort(x.b)
	cfg := filepath.Join(x.dir, "oxios.toml")
	text := fmt.Sprintf("[containerd]\naddress = %q\n[image]\narchive = %q\n[container]\nid = \"bench-oxios-%d\"\nport = %d\ndata_dir = %q\nlog_dir = %q\nrun_dir = %q\nenv = [\"OXIOS_DEMO_LISTEN=127.0.0.1:{port}\"]\n",
		x.addr, x.archive, i+1, port, filepath.Join(x.dir, "data"), filepath.Join(x.dir, "logs"), filepath.Join(x.dir, "run"))
	os.WriteFile(cfg, []byte(text), 0o644)
	t0 := time.Now()
	x.run(x.oxios, "start", "--config", cfg)
	start := time.Since(t0)
	t0 = time.Now()
	x.run(x.oxios, "stop", "--config", cfg)
	stop := time.Since(t0)
	if measure {
		x.add("oxios start", start)
		x.add("oxios stop", stop)
	}
}

func (x *bench) ctrArgs(args ...string) []string {
	return append([]string{"--address", x.addr, "--namespace", ns}, args...)
}

// ctrRound: `ctr run -d` (poll=false: no readiness at all; poll=true: then
// connect every 200 ms until the port answers, the old layer's loop), the
// daemon's own exit time (SIGTERM to exit event), and ctr's stop.
//
// hardened=true runs ctr with the part of oxios' hardening that ctr can
// express (--seccomp, --read-only), to separate oxios' own overhead from
// the cost of the hardened spec (runc compiling the seccomp filter).
func (x *bench) ctrRound(i int, poll, hardened bool) {
	port := testenv.FreePort(x.b)
	id := fmt.Sprintf("bench-ctr-%d-%t-%t", i, poll, hardened)
	args := []string{"run", "-d", "--net-host", "--env", "OXIOS_DEMO_LISTEN=127.0.0.1:" + strconv.Itoa(port),
		"--log-uri", "file://" + filepath.Join(x.dir, id+".log")}
	if hardened {
		args = append(args, "--seccomp", "--read-only")
	}
	if x.runtime != "" {
		args = append(args, "--runc-binary", x.runtime)
	}
	args = append(args, config.DefaultRef, id)
	t0 := time.Now()
	x.run(x.ctr, x.ctrArgs(args...)...)
	if hardened {
		x.add("ctr run -d --seccomp --read-only", time.Since(t0))
		pollConnect(port)
		x.ctrStop(id)
		return
	}
	if poll {
		pollConnect(port)
		x.add("ctr run -d + 200ms poll", time.Since(t0))
	} else {
		x.add("ctr run -d", time.Since(t0))
		pollConnect(port) // ready before stopping, as for oxios
	}
	if poll {
		x.add("daemon's own exit", x.ownExit(id))
		x.run(x.ctr, x.ctrArgs("task", "rm", id)...)
		x.run(x.ctr, x.ctrArgs("container", "rm", id)...)
		return
	}
	t0 = time.Now()
	x.ctrStop(id)
	x.add("ctr task kill + rm", time.Since(t0))
}

func pollConnect(port int) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ctrStop: SIGTERM, then `ctr task rm` until the task has exited (it
// refuses a running task), then `ctr rm`.
func (x *bench) ctrStop(id string) {
	x.run(x.ctr, x.ctrArgs("task", "kill", "--signal", "SIGTERM", id)...)
	for exec.Command(x.ctr, x.ctrArgs("task", "rm", id)...).Run() != nil {
	}
	x.run(x.ctr, x.ctrArgs("container", "rm", id)...)
}

// ownExit: from SIGTERM to containerd's exit event, with nothing else.
func (x *bench) ownExit(id string) time.Duration {
	cl, err := client.New(x.addr)
	if err != nil {
		x.b.Fatal(err)
	}
	defer cl.Close()
	ctx := namespaces.WithNamespace(context.Background(), ns)
	c, err := cl.LoadContainer(ctx, id)
	if err != nil {
		x.b.Fatal(err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		x.b.Fatal(err)
	}
	ch, err := task.Wait(ctx)
	if err != nil {
		x.b.Fatal(err)
	}
	t0 := time.Now()
	task.Kill(ctx, syscall.SIGTERM)
	<-ch
	return time.Since(t0)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (x *bench) report() {
	m := map[string]time.Duration{}
	for k, v := range x.samples {
		m[k] = median(v)
	}
	rt := x.runtime
	if rt == "" {
		rt = "runc"
	}
	fmt.Printf("\noxios runtime benchmark: %d rounds, median, containerd %s, OCI runtime %s\n\n", x.rounds, x.addr, rt)
	fmt.Printf("%-33s %10s   %s\n", "operation", "median", "ratio")
	row := func(name, ratio string) { fmt.Printf("%-33s %8.1fms   %s\n", name, ms(m[name]), ratio) }
	ratio := func(a, b string) float64 { return float64(m[a]) / float64(m[b]) }
	row("oxios start", "(to ready)")
	row("ctr run -d", fmt.Sprintf("oxios start / this = %.2fx (target <= 1.2x)", ratio("oxios start", "ctr run -d")))
	row("ctr run -d --seccomp --read-only", fmt.Sprintf("oxios start / this = %.2fx (same hardening cost, no readiness)", ratio("oxios start", "ctr run -d --seccomp --read-only")))
	row("ctr run -d + 200ms poll", fmt.Sprintf("oxios start / this = %.2fx (target < 1x)", ratio("oxios start", "ctr run -d + 200ms poll")))
	// The same ratio round by round (oxios and ctr ran seconds apart):
	// less sensitive to load that changes during the run.
	var per []float64
	for i, d := range x.samples["oxios start"] {
		if i < len(x.samples["ctr run -d"]) {
			per = append(per, float64(d)/float64(x.samples["ctr run -d"][i]))
		}
	}
	slices.Sort(per)
	if n := len(per); n > 0 {
		fmt.Printf("%-33s %10s   per round: median %.2fx, p25 %.2fx, p75 %.2fx\n", "oxios start / ctr run -d", "", per[n/2], per[n/4], per[3*n/4])
	}
	row("oxios stop", "(task and container gone)")
	row("ctr task kill + rm", fmt.Sprintf("oxios stop / this = %.2fx", ratio("oxios stop", "ctr task kill + rm")))
	row("daemon's own exit", fmt.Sprintf("oxios stop - this = %+.1fms (target <= +50ms)", ms(m["oxios stop"]-m["daemon's own exit"])))
	x.b.ReportMetric(ms(m["oxios start"]), "start-ms")
	x.b.ReportMetric(ratio("oxios start", "ctr run -d"), "start/ctr-run")
	x.b.ReportMetric(ms(m["oxios stop"]), "stop-ms")
}
