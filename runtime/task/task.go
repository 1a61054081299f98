// Package task owns the daemon's containerd side on the host: the image,
// the container and its task, readiness, stop, status and logs. containerd
// is the source of truth; nothing is recorded on the host but the log and
// a start lock. It takes io.Writers and never prints on its own.
package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/a7garden/oxios/runtime/config"
)

// Errors callers branch on (the CLI turns them into hints).
var (
	ErrUnreachable    = errors.New("containerd not reachable")
	ErrPortInUse      = errors.New("port already in use")
	ErrArchiveMissing = errors.New("image archive missing")
	// ErrArchiveImages: an upgrade's archive holds several images and
	// none is named image.ref, so which one to run is not known.
	ErrArchiveImages = errors.New("ambiguous image archive")
	ErrNotReady      = errors.New("daemon did not become ready")
	ErrLegacyRunning = errors.New("the old oxios daemon is running")
	ErrNotRunning    = errors.New("not running")
)

// Labels on the container.
const (
	LabelHash      = "oxios.hash"       // config+image hash: recreate when it changes
	LabelStartedAt = "oxios.started-at" // RFC 3339, set when the task starts
	LabelPort      = "oxios.port"
	// LabelImageDigest pins the image the container was created from: the
	// container records the image by name, which a pull may re-point.
	LabelImageDigest = "oxios.image-digest"
)

// Options configure a Runtime.
type Options struct {
	Config *config.Config
	// LogDriver is the binary the shim runs as the logging binary;
	// default: LogDriverFor(this executable).
	LogDriver string
	// Out receives progress lines (the CLI passes stderr); nil = discard.
	Out io.Writer
	// Progress adds per-blob lines while pulling (the CLI sets it on a TTY).
	Progress bool
}

// Runtime is one connection to containerd for one configured container.
type Runtime struct {
	cfg    *config.Config
	client *client.Client
	out    io.Writer
	logBin string

	showProgress bool

	specCache  *ocispec.Image // imageSpec's cache, for specDigest
	specDigest digest.Digest
}

// Connect dials containerd and checks that it answers.
func Connect(ctx context.Context, o Options) (*Runtime, error) {
	cfg := o.Config
	addr := strings.TrimPrefix(cfg.Containerd.Address, "unix://")
	if _, err := os.Stat(addr); err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, addr, err)
	}
	// WithDefaultRuntime: NewContainer would otherwise read the namespace's
	// default-runtime label (a round trip) before WithRuntime overrides it.
	cl, err := client.New(addr, client.WithDefaultNamespace(cfg.Containerd.Namespace),
		client.WithDefaultRuntime(cfg.Containerd.Runtime), client.WithTimeout(2*time.Second))
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, addr, err)
	}
	r := &Runtime{cfg: cfg, client: cl, out: o.Out, logBin: o.LogDriver, showProgress: o.Progress}
	if r.out == nil {
		r.out = io.Discard
	}
	if r.logBin == "" {
		exe, _ := os.Executable()
		r.logBin = LogDriverFor(exe)
	}
	// The snapshotter query overlaps the ping: both wait for the
	// connection, which the first call sets up.
	resolved := make(chan struct{})
	go func() { defer close(resolved); r.resolveSnapshotter(ctx) }()
	err = r.ping(ctx)
	<-resolved
	if err != nil {
		cl.Close()
		return nil, err
	}
	return r, nil
}

// resolveSnapshotter: containerd.snapshotter = "" means overlayfs when
// this containerd has it working, else native (overlayfs is unavailable
// on some filesystems, e.g. inside another overlay).
func (r *Runtime) resolveSnapshotter(ctx context.Context) {
	if r.cfg.Containerd.Snapshotter != "" {
		return
	}
	r.cfg.Containerd.Snapshotter = "native"
	resp, err := r.client.IntrospectionService().Plugins(ctx, `type=="io.containerd.snapshotter.v1",id=="overlayfs"`)
	if err == nil && len(resp.Plugins) == 1 && resp.Plugins[0].InitErr == nil {
		r.cfg.Containerd.Snapshotter = "overlayfs"
	}
}

func (r *Runtime) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.client.Version(ctx); err != nil {
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, r.cfg.Containerd.Address, err)
	}
	return nil
}

// LogDriverName is the small logging binary (cmd/oxios-logd) that
// LogDriverFor looks for next to the CLI.
const LogDriverName = "oxios-logd"

// LogDriverFor picks the logging binary for the CLI at exe: oxios-logd in
// the same directory when it is there, else exe itself (which runs as the
// driver when it sees logdriver.Mode, e.g. an installed oxios copied
// without oxios-logd). The shim waits for the driver to be ready before it
// creates the task: oxios-logd is ready about 1 ms after exec, bin/oxios,
// which loads and initializes the containerd client, 3-5 ms.
func LogDriverFor(exe string) string {
	if exe == "" {
		return ""
	}
	sib := filepath.Join(filepath.Dir(exe), LogDriverName)
	if st, err := os.Stat(sib); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return sib
	}
	return exe
}

// Close closes the connection; the task keeps running.
func (r *Runtime) Close() error { return r.client.Close() }

func (r *Runtime) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.cfg.Containerd.Namespace)
}

func (r *Runtime) progress(format string, a ...any) {
	fmt.Fprintf(r.out, format+"\n", a...)
}

// load returns the container, or nil when there is none.
func (r *Runtime) load(ctx context.Context) (client.Container, error) {
	c, err := r.client.LoadContainer(ctx, r.cfg.Container.ID)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, r.wrapUnavailable(err)
	}
	return c, nil
}

// wrapUnavailable marks a lost connection as ErrUnreachable so that callers
// never take an outage for an exit.
func (r *Runtime) wrapUnavailable(err error) error {
	if err != nil && errdefs.IsUnavailable(err) {
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, r.cfg.Containerd.Address, err)
	}
	return err
}
