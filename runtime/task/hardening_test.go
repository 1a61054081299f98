//go:build linux

package task

import (
	"context"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/a7garden/oxios/internal/testenv"
)

// buildProbe builds the static procstatus helper into dir.
func buildProbe(t *testing.T, dir string) string {
	t.Helper()
	return buildTestdata(t, dir, "procstatus")
}

// buildTestdata builds ./testdata/NAME into dir/NAME, static.
func buildTestdata(t *testing.T, dir, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "./testdata/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	os.Chmod(out, 0o755)
	return out
}

// execInTask runs argv inside the running task with the container's own
// process spec (user, capabilities, no_new_privs), returning its output.
func execInTask(t *testing.T, r *Runtime, argv ...string) string {
	t.Helper()
	out, code := execInTaskStatus(t, r, argv...)
	if code != 0 {
		t.Fatalf("%v exited %d: %s", argv, code, out)
	}
	return out
}

// execInTaskStatus is execInTask that also returns the exit code (128+N
// after signal N) instead of failing on a non-zero one.
func execInTaskStatus(t *testing.T, r *Runtime, argv ...string) (string, uint32) {
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
	return string(out), st.ExitCode()
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

// The seccomp filter covers the native ABI only (container.seccomp_32bit
// false): a syscall through int 0x80 kills the process inside the task,
// while the same program runs on the host.
func TestSeccompRefuses32BitABI(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("int 0x80 is an amd64 test")
	}
	e := newEnv(t)
	r := e.connect(t)
	if _, err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(e.cfg.Container.DataDir, "abi32")
	if err := os.WriteFile(bin, abi32ELF(), 0o755); err != nil {
		t.Fatal(err)
	}
	if code := testenv.ExitCode(t, exec.Command(bin).Run()); code != 42 {
		t.Skipf("this kernel has no i386 syscall ABI (exit %d)", code)
	}
	if _, code := execInTaskStatus(t, r, e.cfg.Container.DataMount+"/abi32"); code != 128+uint32(syscall.SIGSYS) {
		t.Fatalf("an i386 syscall inside the task: exit %d, want %d (killed by SIGSYS)", code, 128+syscall.SIGSYS)
	}
}

// abi32ELF is a static, single-threaded x86-64 program (a Go one would
// keep its other threads when seccomp kills the calling one): getpid
// through int 0x80, then exit 42.
func abi32ELF() []byte {
	code := []byte{
		0xb8, 20, 0, 0, 0, // mov eax, 20 (getpid, i386 table)
		0xcd, 0x80, // int 0x80
		0xbf, 42, 0, 0, 0, // mov edi, 42
		0xb8, 60, 0, 0, 0, // mov eax, 60 (exit, x86-64 table)
		0x0f, 0x05, // syscall
	}
	const base, hdr = 0x400000, 64 + 56
	size := uint64(hdr + len(code))
	b := make([]byte, 0, size)
	le := binary.LittleEndian
	b = append(b, 0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	b = le.AppendUint16(b, 2)    // ET_EXEC
	b = le.AppendUint16(b, 0x3e) // EM_X86_64
	b = le.AppendUint32(b, 1)
	b = le.AppendUint64(b, base+hdr) // entry
	b = le.AppendUint64(b, 64)       // program headers
	b = le.AppendUint64(b, 0)        // no sections
	b = le.AppendUint32(b, 0)
	b = le.AppendUint16(b, 64)
	b = le.AppendUint16(b, 56)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, 1) // PT_LOAD
	b = le.AppendUint32(b, 5) // R+X
	b = le.AppendUint64(b, 0)
	b = le.AppendUint64(b, base)
	b = le.AppendUint64(b, base)
	b = le.AppendUint64(b, size)
	b = le.AppendUint64(b, size)
	b = le.AppendUint64(b, 0x1000)
	return append(b, code...)
}
