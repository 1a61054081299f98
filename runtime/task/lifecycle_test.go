//go:build linux

package task

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/a7garden/oxios/runtime/config"

	"golang.org/x/sys/unix"
)

func countLines(t *testing.T, path, sub string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), sub)
}

// Two runs, one log: the second run appends, nothing is truncated.
func TestLogContinuityAcrossRuns(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	ctx := context.Background()
	for run := 1; run <= 2; run++ {
		if _, err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countLines(t, e.cfg.LogPath(), "oxios-demo starting"); n != run {
			t.Fatalf("after run %d the log holds %d runs", run, n)
		}
		if n := countLines(t, e.cfg.LogPath(), "msg=exit code=0"); n != run {
			t.Fatalf("after run %d the log holds %d clean exits", run, n)
		}
	}
}

// A small max_size rotates the log across files while the task runs.
func TestLogRotation(t *testing.T) {
	e := newEnv(t)
	e.cfg.Logs.MaxSize = 600
	e.cfg.Logs.MaxFiles = 2
	r := e.connect(t)
	ctx := context.Background()
	for run := 0; run < 3; run++ {
		if _, err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p := e.cfg.LogPath()
	for _, f := range []string{p, p + ".1", p + ".2"} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if st.Size() > 600 {
			t.Errorf("%s is %d bytes, over max_size", f, st.Size())
		}
	}
	if _, err := os.Stat(p + ".3"); !os.IsNotExist(err) {
		t.Errorf("more than max_files kept")
	}
}

// A task that exited on its own is "stale"; the next start removes it and
// runs a new one.
func TestExitedLeftoverIsCleaned(t *testing.T) {
	e := newEnv(t, "OXIOS_DEMO_EXIT_AFTER=1500ms", "OXIOS_DEMO_EXIT_CODE=7")
	r := e.connect(t)
	ctx := r.ctx(context.Background())
	first, err := r.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctr, _ := r.client.LoadContainer(ctx, e.cfg.Container.ID)
	task, _ := ctr.Task(ctx, nil)
	ch, _ := task.Wait(ctx)
	<-ch
	s, err := r.Status(ctx)
	if err != nil || s.State != "stale" || s.ExitCode == nil || *s.ExitCode != 7 || !strings.HasPrefix(s.String(), "stale (PID ") {
		t.Fatalf("status of exited task: %+v %v", s, err)
	}
	// The container is reused (same config): its task gets the rootfs
	// mounts from the snapshotter, not from a Prepare in this run.
	second, err := r.Start(ctx)
	if err != nil || second.Cleaned == "" || second.Adopted || second.Recreated || second.PID == first.PID {
		t.Fatalf("start over a leftover: %+v %v", second, err)
	}
}

// Changing the config recreates the container; an unchanged one is reused.
func TestRecreateWhenConfigChanges(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	ctx := context.Background()
	first, err := r.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.Container.Env = append(e.cfg.Container.Env, "CHANGED=1")
	second, err := r.Start(ctx)
	if err != nil || second.Adopted || second.PID == first.PID {
		t.Fatalf("after a config change: %+v %v", second, err)
	}
	third, err := r.Start(ctx)
	if err != nil || !third.Adopted || third.PID != second.PID {
		t.Fatalf("unchanged config: %+v %v", third, err)
	}
}

// containerd killed -9 and restarted: the task keeps running under its
// shim, status says so, and stop still works.
func TestContainerdRestartKeepsTask(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	ctx := context.Background()
	st, err := r.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.ctrd.Kill9()
	if _, err := r.Status(ctx); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("status during the outage: %v, want ErrUnreachable (never \"stopped\")", err)
	}
	if get(t, st.URL+"/health") != 200 {
		t.Fatal("daemon died with containerd")
	}
	e.ctrd.Restart()
	r.client.Reconnect()
	s, err := r.Status(ctx)
	if err != nil || !s.Running() || s.PID != st.PID {
		t.Fatalf("after restart: %+v %v", s, err)
	}
	if _, err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// Ten parallel starts (separate connections, as ten CLIs) end with one
// task, and every one of them reports it.
func TestParallelStartsMakeOneTask(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	pids := make([]uint32, 10)
	errs := make([]error, 10)
	for i := range 10 {
		r := e.connect(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := r.Start(context.Background())
			errs[i] = err
			if err == nil {
				pids[i] = st.PID
			}
		}()
	}
	wg.Wait()
	for i := range 10 {
		if errs[i] != nil || pids[i] != pids[0] {
			t.Fatalf("start %d: pid %d (first %d), %v", i, pids[i], pids[0], errs[i])
		}
	}
	r := e.connect(t)
	ctx := r.ctx(context.Background())
	ctrs, _ := r.client.Containers(ctx)
	if len(ctrs) != 1 {
		t.Fatalf("%d containers", len(ctrs))
	}
}

// The old daemon's flock on oxios.lock refuses the start, naming it.
func TestLegacyLockHolderRefused(t *testing.T) {
	e := newEnv(t)
	os.MkdirAll(e.cfg.Container.DataDir, 0o755)
	p := filepath.Join(e.cfg.Container.DataDir, "oxios.lock")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("4242\n")
	// flock locks belong to the open file description: a second open in
	// this process conflicts with it, as another process would.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	r := e.connect(t)
	_, err = r.Start(context.Background())
	var le *LegacyError
	if !errors.As(err, &le) || le.PID != 4242 || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "kill -INT 4242") {
		t.Fatalf("err = %v", err)
	}
	e.mustHaveNoContainer(t, r)
}

// An "oxios" process (the old daemon) on the port is named as such.
func TestLegacyProcessOnPortRefused(t *testing.T) {
	e := newEnv(t)
	exe, _ := os.Executable()
	fake := filepath.Join(e.dir, "oxios")
	b, _ := os.ReadFile(exe)
	os.WriteFile(fake, b, 0o755)
	cmd := exec.Command(fake)
	cmd.Env = append(os.Environ(), "OXIOS_TEST_LISTEN="+strconv.Itoa(e.cfg.Container.Port))
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, 9)
	out.Read(buf) // "listening" once it is bound
	r := e.connect(t)
	_, err := r.Start(context.Background())
	var le *LegacyError
	if !errors.As(err, &le) || le.PID != cmd.Process.Pid {
		t.Fatalf("err = %v", err)
	}
	e.mustHaveNoContainer(t, r)
}

// fakeLegacyDaemon is TestMain's OXIOS_TEST_LISTEN mode: listen and block.
func fakeLegacyDaemon(port string) {
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		os.Exit(1)
	}
	os.Stdout.WriteString("listening")
	for {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
	}
}

// Leftovers of a CLI that crashed mid-start: a snapshot without its
// container, then a task created but never started. Start and stop both
// clean them up instead of failing or hanging.
func TestCrashLeftovers(t *testing.T) {
	e := newEnv(t)
	r, ctx, img := e.connectWithImage(t)
	snap := e.cfg.Container.ID + "-rootfs"
	mounts, err := r.client.SnapshotService(e.cfg.Containerd.Snapshotter).Prepare(ctx, snap, imgChainID(t, ctx, img))
	if err != nil || len(mounts) == 0 {
		t.Fatalf("prepare leftover snapshot: %v", err)
	}
	st, err := r.Start(ctx)
	if err != nil {
		t.Fatalf("start over a leftover snapshot: %v", err)
	}
	if _, err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// A created, never started task.
	res := &Started{}
	d, err := r.desiredSpec(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.ensureContainer(ctx, nil, img, d, res, nil); err != nil {
		t.Fatal(err)
	}
	ctr, err := r.client.LoadContainer(ctx, e.cfg.Container.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctr.NewTask(ctx, cio.NullIO); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := r.Stop(ctx); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("stop hangs on a created task")
	}
	e.mustHaveNoContainer(t, r)
	_ = st
}

// A daemon that ignores its stop signal is killed after the grace
// (oxios-init's, then the host's as the backstop), and stop still ends
// with no task.
func TestStopIgnoringDaemon(t *testing.T) {
	e := newEnv(t, "OXIOS_DEMO_SIGTERM=ignore")
	e.cfg.Init.Rewrite = "15:15" // deliver SIGTERM itself, which the demo ignores
	e.cfg.Container.StopTimeout = config.Duration(time.Second)
	r := e.connect(t)
	ctx := context.Background()
	if _, err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := r.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Took < time.Second || res.Took > r.hostGrace()+5*time.Second {
		t.Fatalf("stop took %v with a 1s grace", res.Took)
	}
	t.Logf("stop of a SIGTERM-ignoring daemon: %v, exit code %d", res.Took, res.ExitCode)
	e.mustHaveNoContainer(t, r)
}

// A new image digest under the same reference recreates the container.
// The new digest is made without a second build: the manifest is copied
// with one more annotation (same config and layers) and the reference is
// moved to it.
func TestRecreateWhenImageDigestChanges(t *testing.T) {
	e := newEnv(t)
	r := e.connect(t)
	ctx := r.ctx(context.Background())
	first, err := r.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	img, err := r.client.GetImage(ctx, e.cfg.Image.Ref)
	if err != nil {
		t.Fatal(err)
	}
	// Until the reference points at it, the new manifest is held only by a
	// lease: without one, containerd's garbage collector may delete it
	// between the write and the update (it did, in CI). collectGarbage
	// runs a collection right there, so a missing lease fails every time.
	lctx, release, err := r.client.WithLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	desc := retaggedManifest(t, lctx, r, img.Target())
	collectGarbage(t, ctx, r)
	if _, err := r.client.ImageService().Update(ctx, images.Image{Name: e.cfg.Image.Ref, Target: desc}, "target"); err != nil {
		t.Fatal(err)
	}
	if err := release(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := r.Start(ctx)
	if err != nil || second.Adopted || second.PID == first.PID {
		t.Fatalf("after the digest change: %+v %v", second, err)
	}
	s, _ := r.Status(ctx)
	if s.ImageDigest != desc.Digest.String() {
		t.Fatalf("status digest %s, want %s", s.ImageDigest, desc.Digest)
	}
}

// collectGarbage makes containerd collect now: deleting a lease with
// SynchronousDelete runs the collector before the call returns.
func collectGarbage(t *testing.T, ctx context.Context, r *Runtime) {
	t.Helper()
	ls := r.client.LeasesService()
	l, err := ls.Create(ctx, leases.WithRandomID())
	if err != nil {
		t.Fatal(err)
	}
	if err := ls.Delete(ctx, l, leases.SynchronousDelete); err != nil {
		t.Fatal(err)
	}
}

// retaggedManifest writes a copy of the image's manifest with an extra
// annotation into the content store and returns its descriptor.
func retaggedManifest(t *testing.T, ctx context.Context, r *Runtime, target ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	cs := r.client.ContentStore()
	b, err := content.ReadBlob(ctx, cs, target)
	if err != nil {
		t.Fatal(err)
	}
	if images.IsIndexType(target.MediaType) {
		var idx ocispec.Index
		json.Unmarshal(b, &idx)
		return retaggedManifest(t, ctx, r, idx.Manifests[0])
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations["test.oxios/variant"] = "2"
	nb, _ := json.Marshal(m)
	desc := ocispec.Descriptor{MediaType: target.MediaType, Digest: digest.FromBytes(nb), Size: int64(len(nb))}
	labels := map[string]string{"containerd.io/gc.ref.content.config": m.Config.Digest.String()}
	for i, l := range m.Layers {
		labels[fmt.Sprintf("containerd.io/gc.ref.content.l.%d", i)] = l.Digest.String()
	}
	if err := content.WriteBlob(ctx, cs, desc.Digest.String(), bytes.NewReader(nb), desc, content.WithLabels(labels)); err != nil {
		t.Fatal(err)
	}
	return desc
}
