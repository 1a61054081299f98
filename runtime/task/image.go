package task

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ensureImage returns the configured image, importing the archive or
// pulling the reference when it is absent (per image.pull), and unpacked.
func (r *Runtime) ensureImage(ctx context.Context) (client.Image, error) {
	ic := r.cfg.Image
	if ic.Pull == "always" {
		return r.pull(ctx)
	}
	img, err := r.client.GetImage(ctx, ic.Ref)
	switch {
	case err == nil:
	case !errdefs.IsNotFound(err):
		return nil, r.wrapUnavailable(err)
	case ic.Pull == "never":
		return nil, fmt.Errorf("image %s not in containerd namespace %s and image.pull = \"never\"", ic.Ref, r.cfg.Containerd.Namespace)
	case ic.Archive != "" && !isRegistryRef(ic.Ref):
		img, err = r.importArchive(ctx)
	default:
		img, err = r.pull(ctx)
	}
	if err != nil {
		return nil, err
	}
	return img, r.unpack(ctx, img)
}

// ahead is what Start works out about the image while it inspects the
// existing container and task.
type ahead struct {
	// facts: the configured image as containerd has it now (nil when
	// absent). Read-only: an absent image is imported or pulled only
	// after the guards passed.
	facts *future[*imageFacts]
	// plan: the container to create from it (nil when the image is absent).
	plan *future[*desired]
}

type imageFacts struct {
	img      client.Image
	chain    string // the rootfs' chain ID: the new snapshot's parent
	unpacked bool   // a snapshot of chain exists
}

func (a *ahead) wait() {
	a.facts.get()
	a.plan.get()
}

// lookAhead finds the configured image, reads its config once (which
// also gives the rootfs' diff IDs), checks that it is unpacked and, on
// another goroutine, builds the desired spec and its hash.
func (r *Runtime) lookAhead(ctx context.Context) *ahead {
	a := &ahead{}
	a.facts = goFuture(func() (*imageFacts, error) {
		img, err := r.client.GetImage(ctx, r.cfg.Image.Ref)
		if errdefs.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, r.wrapUnavailable(err)
		}
		ic, err := r.imageSpec(ctx, img)
		if err != nil {
			return nil, fmt.Errorf("image %s config: %w", img.Name(), err)
		}
		f := &imageFacts{img: img, chain: identity.ChainID(ic.RootFS.DiffIDs).String()}
		_, err = r.client.SnapshotService(r.cfg.Containerd.Snapshotter).Stat(ctx, f.chain)
		if err != nil && !errdefs.IsNotFound(err) {
			return nil, r.wrapUnavailable(err)
		}
		f.unpacked = err == nil
		return f, nil
	})
	a.plan = goFuture(func() (*desired, error) {
		f, err := a.facts.get() // after imageSpec filled its cache
		if err != nil || f == nil {
			return nil, err
		}
		return r.desiredSpec(ctx, f.img)
	})
	return a
}

// imageAndSpec returns the image, present and unpacked, and the container
// to create from it: lookAhead's result, or, when the image is absent or
// image.pull = "always", an import or pull first.
func (r *Runtime) imageAndSpec(ctx context.Context, a *ahead) (client.Image, *desired, error) {
	f, err := a.facts.get()
	if err != nil {
		return nil, nil, err
	}
	d, err := a.plan.get()
	if err != nil {
		return nil, nil, err
	}
	if f == nil || r.cfg.Image.Pull == "always" {
		img, err := r.ensureImage(ctx)
		if err != nil {
			return nil, nil, err
		}
		d, err := r.desiredSpec(ctx, img)
		return img, d, err
	}
	if !f.unpacked {
		if err := r.unpackNow(ctx, f.img); err != nil {
			return nil, nil, err
		}
	}
	return f.img, d, nil
}

// IsRegistryRef: ref names a registry to pull from (and to ask for a
// newer digest), not a local build.
func IsRegistryRef(ref string) bool { return isRegistryRef(ref) }

// isRegistryRef: "localhost/..." names a local build, not a registry
// (no port, so it is not localhost:5000/...).
func isRegistryRef(ref string) bool {
	host, _, ok := strings.Cut(ref, "/")
	if !ok || host == "localhost" {
		return false
	}
	return strings.ContainsAny(host, ".:")
}

func (r *Runtime) importArchive(ctx context.Context) (client.Image, error) {
	imgs, err := r.importImages(ctx)
	if err != nil {
		return nil, err
	}
	return r.pickImported(ctx, imgs)
}

// importImages imports image.archive: the images it names, as the
// import created or moved them.
func (r *Runtime) importImages(ctx context.Context) ([]images.Image, error) {
	path := r.cfg.Image.Archive
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("%w: %s (image %s is not in containerd either)", ErrArchiveMissing, path, r.cfg.Image.Ref)
	}
	if err != nil {
		return nil, fmt.Errorf("open image archive %s: %w", path, err)
	}
	defer f.Close()
	r.progress("importing %s", path)
	var rd io.Reader = f
	if r.showProgress {
		var stop func()
		rd, stop = r.importProgress(f)
		defer stop()
	}
	imgs, err := r.client.Import(ctx, rd, client.WithImportPlatform(nil))
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, r.wrapUnavailable(err))
	}
	return imgs, nil
}

// pickImported returns the configured ref from what the archive held; an
// archive whose single image carries another name is tagged with the ref.
func (r *Runtime) pickImported(ctx context.Context, imgs []images.Image) (client.Image, error) {
	ref := r.cfg.Image.Ref
	for _, im := range imgs {
		if im.Name == ref {
			return client.NewImage(r.client, im), nil
		}
	}
	if len(imgs) != 1 {
		return nil, fmt.Errorf("archive %s holds %d images, none named %s (set image.ref)", r.cfg.Image.Archive, len(imgs), ref)
	}
	im := images.Image{Name: ref, Target: imgs[0].Target}
	is := r.client.ImageService()
	if _, err := is.Create(ctx, im); errdefs.IsAlreadyExists(err) {
		_, err = is.Update(ctx, im)
		if err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	return client.NewImage(r.client, im), nil
}

func (r *Runtime) pull(ctx context.Context) (client.Image, error) {
	ref := r.cfg.Image.Ref
	r.progress("pulling %s", ref)
	resolver := newResolver(r.cfg.Image.PlainHTTP)
	opts := []client.RemoteOpt{client.WithResolver(resolver), client.WithPullUnpack,
		client.WithPullSnapshotter(r.cfg.Containerd.Snapshotter)}
	if r.showProgress {
		opts = append(opts, client.WithImageHandler(images.HandlerFunc(r.fetchProgress)))
	}
	img, err := r.client.Pull(ctx, ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, r.wrapUnavailable(err))
	}
	return img, nil
}

// unpack unpacks an image just imported or pulled. Always, even when its
// rootfs snapshot exists already (IsUnpacked): Unpack is also what labels
// the image's config with the snapshot for the garbage collector, and an
// image whose layers another image unpacked first would otherwise hold no
// reference to them, so that removing that other image (an upgrade's old
// version) takes its rootfs away.
func (r *Runtime) unpack(ctx context.Context, img client.Image) error {
	return r.unpackNow(ctx, img)
}

// unpackNow unpacks img into the configured snapshotter.
func (r *Runtime) unpackNow(ctx context.Context, img client.Image) error {
	sn := r.cfg.Containerd.Snapshotter
	if err := img.Unpack(ctx, sn); err != nil {
		return fmt.Errorf("unpack %s with snapshotter %s: %w", img.Name(), sn, err)
	}
	return nil
}

// fetchProgress prints one line per blob as the pull reaches it (on a
// TTY only: the CLI decides).
func (r *Runtime) fetchProgress(_ context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	r.progress("  fetching %s %s (%d bytes)", shortMedia(d.MediaType), d.Digest.Encoded()[:12], d.Size)
	return nil, nil
}

func shortMedia(mt string) string {
	switch {
	case strings.Contains(mt, "index"), strings.Contains(mt, "manifest.list"):
		return "index   "
	case strings.Contains(mt, "manifest"):
		return "manifest"
	case strings.Contains(mt, "config"):
		return "config  "
	}
	return "layer   "
}

// newResolver talks HTTPS to registries, or plain HTTP to every registry
// when plainHTTP is set (image.plain_http: a registry on 127.0.0.1).
func newResolver(plainHTTP bool) remotes.Resolver {
	var opts []docker.RegistryOpt
	if plainHTTP {
		opts = append(opts, docker.WithPlainHTTP(func(string) (bool, error) { return true, nil }))
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(opts...)})
}
