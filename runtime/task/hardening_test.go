//go:build linux

package task

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/cio"
)

// buildProbe builds the static procstatus helper into dir.
func buildProbe(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "procstatus")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/procstatus")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build procstatus: %v\n%s", err, b)
	}
	os.Chmod(out, 0o755)
	return out
}

// execInTask runs argv inside the running task with the container's own
// process spec (user, capabilities, no_new_privs), returning its output.
func execInTask(t *testing.T, r *Runtime, argv ...string) string {
	t.Helper()
	ctx := r.ctx(context.Background())
	ctr, err := r.client.LoadContainer(ctx, r.cfg.Container.ID)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps := *spec.Process
	ps.Args = argv
	// The shim writes the output straight to a file: no FIFO copy to race.
	outPath := filepath.Join(r.cfg.Container.DataDir, "probe.out")
	os.Remove(outPath)
	p, err := task.Exec(ctx, "probe", &ps, cio.LogFile(outPath))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st := <-ch
	p.Delete(ctx)
	out, _ := os.ReadFile(outPath)
	if st.ExitCode() != 0 {
		t.Fatalf("%v exited %d: %s", argv, st.ExitCode(), out)
	}
	return string(out)
}

// TestHardening proves issue 5's spec from inside the running container,
// for PID 1 (oxios-init) and for an exec'd process alike.
func TestHardening(t *testing.T) {
	e := newEnv(t)
	e.cfg.Resources.Pids = 64
	e.cfg.Resources.Memory = 256 << 20
	e.cfg.Resources.CPUs = 0.5
	r := e.connect(t)
	if _, err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	buildProbe(t, e.cfg.Container.DataDir)
	out := execInTask(t, r, e.cfg.Container.DataMount+"/procstatus")
	t.Logf("inside the task:\n%s", out)
	for _, who := range []string{"/proc/self/status", "/proc/1/status"} {
		for _, want := range []string{"CapEff: 0000000000000000", "CapPrm: 0000000000000000", "CapBnd: 0000000000000000", "NoNewPrivs: 1", "Seccomp: 2", "Uid: 65532 65532 65532 65532"} {
			if !strings.Contains(out, who+" "+want) {
				t.Errorf("%s: want %q", who, want)
			}
		}
	}
	if !strings.Contains(out, "write /: ") || strings.Contains(out, "write /: ok") {
		t.Errorf("writing to / did not fail")
	}
	if !strings.Contains(out, "write /tmp: ok") {
		t.Errorf("/tmp is not writable")
	}
	spec := e.spec(t, r)
	if spec.Linux.Resources == nil || spec.Linux.Resources.Pids == nil || spec.Linux.Resources.Pids.Limit == nil || *spec.Linux.Resources.Pids.Limit != 64 {
		t.Errorf("pids limit not in spec: %+v", spec.Linux.Resources)
	}
	if len(spec.Linux.MaskedPaths) == 0 || len(spec.Linux.ReadonlyPaths) == 0 {
		t.Errorf("masked/readonly paths missing")
	}
	// The kernel's view: the task's cgroup carries the limits.
	for file, want := range cgroupLimitFiles(spec.Linux.CgroupsPath) {
		b, err := os.ReadFile(file)
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s = %q (%v), want %s", file, b, err, want)
		}
	}
}

// cgroupLimitFiles: the files holding 256MiB / 64 pids / 0.5 CPU for the
// cgroup path, on a v1 (or hybrid) host or a unified v2 host.
func cgroupLimitFiles(path string) map[string]string {
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil {
		return map[string]string{
			filepath.Join("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes"): "268435456",
			filepath.Join("/sys/fs/cgroup/pids", path, "pids.max"):                "64",
			filepath.Join("/sys/fs/cgroup/cpu", path, "cpu.cfs_quota_us"):         "50000",
		}
	}
	return map[string]string{
		filepath.Join("/sys/fs/cgroup", path, "memory.max"): "268435456",
		filepath.Join("/sys/fs/cgroup", path, "pids.max"):   "64",
		filepath.Join("/sys/fs/cgroup", path, "cpu.max"):    "50000 100000",
	}
}

// freePrivilegedPort finds a free port below 1024 (as root we can bind it).
func freePrivilegedPort(t *testing.T) int {
	for p := 1023; p > 900; p-- {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port below 1024")
	return 0
}

// A port below 1024 keeps exactly NET_BIND_SERVICE, ambient too, so the
// non-root daemon two execs down (runc -> oxios-init -> daemon) binds it.
func TestPrivilegedPortKeepsOnlyNetBind(t *testing.T) {
	e := newEnv(t)
	e.cfg.Container.Port = freePrivilegedPort(t)
	r := e.connect(t)
	st, err := r.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if code := get(t, st.URL+"/health"); code != 200 {
		t.Fatalf("daemon on port %d: %d", e.cfg.Container.Port, code)
	}
	c := e.spec(t, r).Process.Capabilities
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted, "ambient": c.Ambient, "inheritable": c.Inheritable} {
		if len(set) != 1 || set[0] != "CAP_NET_BIND_SERVICE" {
			t.Errorf("%s = %v", name, set)
		}
	}
	buildProbe(t, e.cfg.Container.DataDir)
	out := execInTask(t, r, e.cfg.Container.DataMount+"/procstatus")
	if !strings.Contains(out, "/proc/1/status CapEff: 0000000000000400") {
		t.Errorf("PID 1 CapEff is not NET_BIND_SERVICE alone:\n%s", out)
	}
}
