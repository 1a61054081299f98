//go:build linux

package task

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/image-spec/identity"

	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/logdriver"
)

// The containerd shim runs this test binary as the log driver (as the
// real CLI re-executes bin/oxios): recognize that invocation first.
func TestMain(m *testing.M) {
	if logdriver.IsInvocation(os.Args[1:]) {
		if err := logdriver.Main(os.Args[1:]); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	if port := os.Getenv("OXIOS_TEST_LISTEN"); port != "" {
		fakeLegacyDaemon(port)
	}
	os.Exit(m.Run())
}

type env struct {
	cfg  *config.Config
	ctrd *ctrtest.Containerd
	dir  string
}

// newEnv: a private containerd, the real image, and a config with its own
// ID (cgroup paths are global), free port and temp directories.
func newEnv(t *testing.T, demoEnv ...string) *env {
	t.Helper()
	ctrd := ctrtest.StartDaemon(t)
	archive := testenv.ImageArchive(t)
	dir, err := os.MkdirTemp("", "oxt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := config.Default()
	c.Containerd.Address = ctrd.Address
	c.Image.Archive = archive
	c.Container.ID = testenv.RandID("t")
	c.Container.Port = testenv.FreePort(t)
	c.Container.DataDir = filepath.Join(dir, "data")
	c.Container.LogDir = filepath.Join(dir, "logs")
	c.Container.RunDir = filepath.Join(dir, "run")
	c.Container.StopTimeout = config.Duration(3 * time.Second)
	c.Init.Extra = map[string]string{"readiness_period": "50ms", "liveness_period": "1s"}
	c.Container.Env = append([]string{"OXIOS_DEMO_LISTEN=127.0.0.1:{port}"}, demoEnv...)
	return &env{cfg: c, ctrd: ctrd, dir: dir}
}

func (e *env) connect(t testing.TB) *Runtime {
	t.Helper()
	exe, _ := os.Executable()
	r, err := Connect(context.Background(), Options{Config: e.cfg, LogDriver: exe, Out: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// connectWithImage connects and makes sure the image is in containerd.
func (e *env) connectWithImage(t *testing.T) (*Runtime, context.Context, client.Image) {
	t.Helper()
	r := e.connect(t)
	ctx := r.ctx(context.Background())
	img, err := r.ensureImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r, ctx, img
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

func newEnvNoDaemon(t *testing.T) *config.Config {
	c := config.Default()
	c.Containerd.Address = filepath.Join(t.TempDir(), "none.sock")
	return c
}

func (e *env) spec(t testing.TB, r *Runtime) *oci.Spec {
	t.Helper()
	ctx := r.ctx(context.Background())
	ctr, err := r.client.LoadContainer(ctx, e.cfg.Container.ID)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func imgChainID(t testing.TB, ctx context.Context, img client.Image) string {
	t.Helper()
	ids, err := img.RootFS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return identity.ChainID(ids).String()
}
