package task

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// ErrNoRegistry: the image ref names no registry (a local build such as
// localhost/oxios:latest), so there is no remote digest to compare with.
var ErrNoRegistry = errors.New("image ref names no registry")

// Freshness compares what a registry serves for a ref with what
// containerd stores under that name and what the container runs.
type Freshness struct {
	Ref string `json:"ref"`
	// Remote is the digest the registry serves for Ref now (the index or
	// manifest a pull would record as the image's target).
	Remote digest.Digest `json:"remote"`
	// Local is containerd's image Ref ("" when containerd has none).
	Local digest.Digest `json:"local,omitempty"`
	// Running is the image the container was created from ("" when there
	// is no container).
	Running digest.Digest `json:"running,omitempty"`
}

// Newer reports whether the registry has something the host does not
// run: a running container is compared with what it runs, else (nothing
// runs) the stored image is what the next start would use.
func (f *Freshness) Newer() bool {
	if f.Running != "" {
		return f.Remote != f.Running
	}
	return f.Remote != f.Local
}

// resolveTimeout bounds the registry round trips of CheckNewer: a timer
// unit must not hang on a registry that accepts and never answers.
const resolveTimeout = 30 * time.Second

// CheckNewer resolves ref (the configured image.ref when "") at its
// registry, fetching the manifest's descriptor only (no layer, no blob
// written to containerd), through the same resolver and plain_http
// setting as a pull, and reads the stored and running digests.
func (r *Runtime) CheckNewer(ctx context.Context, ref string) (*Freshness, error) {
	if ref == "" {
		ref = r.cfg.Image.Ref
	}
	if !isRegistryRef(ref) {
		return nil, fmt.Errorf("%w: %s (image.ref): nothing to compare with", ErrNoRegistry, ref)
	}
	ctx = r.ctx(ctx)
	f := &Freshness{Ref: ref}
	remote, err := r.resolveRemote(ctx, ref)
	if err != nil {
		return nil, err
	}
	f.Remote = remote
	if f.Local, err = r.localDigest(ctx, ref); err != nil {
		return nil, err
	}
	if f.Running, err = r.runningDigest(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// resolveRemote asks the registry for ref's descriptor (a HEAD, or a GET
// of the manifest where HEAD is refused).
func (r *Runtime) resolveRemote(ctx context.Context, ref string) (digest.Digest, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	_, desc, err := newResolver(r.cfg.Image.PlainHTTP).Resolve(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("resolve %s at its registry: %w", ref, err)
	}
	return desc.Digest, nil
}

// localDigest is containerd's image named ref ("" when absent).
func (r *Runtime) localDigest(ctx context.Context, ref string) (digest.Digest, error) {
	img, err := r.client.ImageService().Get(ctx, ref)
	if errdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("image %s: %w", ref, r.wrapUnavailable(err))
	}
	return img.Target.Digest, nil
}

// runningDigest is the digest of the image the container was created
// from ("" when there is no container). The container records the image
// by name; its LabelImageDigest pins the digest at creation, since the
// name may have been re-pointed (pulled again) while it kept running.
// A container made before that label existed falls back to the name.
func (r *Runtime) runningDigest(ctx context.Context) (digest.Digest, error) {
	ctr, err := r.load(ctx)
	if err != nil || ctr == nil {
		return "", err
	}
	info, err := ctr.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("container %s: %w", r.cfg.Container.ID, r.wrapUnavailable(err))
	}
	return r.containerDigest(ctx, info)
}

// containerDigest is the digest of the image the container info was
// created from: its LabelImageDigest, else (a container made before that
// label existed) the target of the image its name holds now ("" when
// that image is gone).
func (r *Runtime) containerDigest(ctx context.Context, info containers.Container) (digest.Digest, error) {
	if d, err := digest.Parse(info.Labels[LabelImageDigest]); err == nil {
		return d, nil
	}
	return r.localDigest(ctx, info.Image)
}
