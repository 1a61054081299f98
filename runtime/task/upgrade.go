// What runtime/upgrade needs of the start path: the running version, the
// images by name, and the start lock held across stop, start and the
// verification window, so that nothing starts a daemon in between.

package task

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/a7garden/oxios/runtime/contract"
)

// Running is the container as containerd has it now.
type Running struct {
	Image string // the container's image name
	// Digest: the image's target digest when the container was created
	// (its LabelImageDigest); "" when that is not known.
	Digest string
	Hash   string // the container's spec hash label (LabelHash)
	PID    uint32
	// Up: the task is running (not only the container record).
	Up bool
}

// Current reads the container and its task; nil when there is no container.
func (r *Runtime) Current(ctx context.Context) (*Running, error) {
	ctx = r.ctx(ctx)
	ctr, err := r.load(ctx)
	if err != nil || ctr == nil {
		return nil, err
	}
	info, err := ctr.Info(ctx, client.WithoutRefreshedMetadata)
	if err != nil {
		return nil, r.wrapUnavailable(err)
	}
	cur := &Running{Image: info.Image, Hash: info.Labels[LabelHash]}
	d, err := r.containerDigest(ctx, info)
	if err != nil {
		return nil, err
	}
	cur.Digest = d.String()
	t, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return cur, nil
	}
	if err != nil {
		return nil, r.wrapUnavailable(err)
	}
	st, err := t.Status(ctx)
	if err != nil {
		return nil, r.wrapUnavailable(err)
	}
	cur.PID, cur.Up = t.Pid(), st.Status == client.Running
	return cur, nil
}

// SpecHash is the hash a container of the current config on image name
// would carry: equal to a container's LabelHash when that container is
// what the config makes of that image.
func (r *Runtime) SpecHash(ctx context.Context, name string) (string, error) {
	ctx = r.ctx(ctx)
	img, err := r.client.GetImage(ctx, name)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", name, r.wrapUnavailable(err))
	}
	d, err := r.desiredSpec(ctx, img)
	if err != nil {
		return "", err
	}
	return d.hash, nil
}

// Fetch pulls ref, or imports archive when it is not "", and unpacks the
// image; it returns the image's target. Pulling or importing moves the
// names involved (ref, the archive's names) in containerd: the caller
// puts back what must not move yet (Tag).
func (r *Runtime) Fetch(ctx context.Context, ref, archive string) (ocispec.Descriptor, error) {
	ctx = r.ctx(ctx)
	cfg := *r.cfg
	cfg.Image.Ref, cfg.Image.Archive = ref, archive
	f := *r
	f.cfg = &cfg
	var img client.Image
	var err error
	if archive != "" {
		img, err = f.importForUpgrade(ctx)
	} else {
		img, err = f.pull(ctx)
	}
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := f.unpack(ctx, img); err != nil {
		return ocispec.Descriptor{}, err
	}
	return img.Target(), nil
}

// importForUpgrade imports the archive and picks the image named
// image.ref, or its only image. An archive of several images, none named
// image.ref, is refused naming them (the new image runs under image.ref,
// so which one is meant cannot be guessed), and what the import did to
// the names is undone: those it created are removed, those it moved
// (they existed before this call) are put back.
func (r *Runtime) importForUpgrade(ctx context.Context) (client.Image, error) {
	is := r.client.ImageService()
	before, err := is.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", r.wrapUnavailable(err))
	}
	imgs, err := r.importImages(ctx)
	if err != nil {
		return nil, err
	}
	named := func(im images.Image) bool { return im.Name == r.cfg.Image.Ref }
	if len(imgs) < 2 || slices.ContainsFunc(imgs, named) {
		return r.pickImported(ctx, imgs)
	}
	names := make([]string, len(imgs))
	for i, im := range imgs {
		names[i] = im.Name
	}
	err = fmt.Errorf("%w: %s holds %d images (%s), none named %s, the image.ref the new image runs under",
		ErrArchiveImages, r.cfg.Image.Archive, len(imgs), strings.Join(names, ", "), r.cfg.Image.Ref)
	return nil, errors.Join(err, r.undoImport(context.WithoutCancel(ctx), imgs, before))
}

// undoImport puts the names imgs back as they were in before: removed
// when they were not there, on their old target when they were.
func (r *Runtime) undoImport(ctx context.Context, imgs, before []images.Image) error {
	old := make(map[string]images.Image, len(before))
	for _, im := range before {
		old[im.Name] = im
	}
	var errs []error
	for _, im := range imgs {
		prev, existed := old[im.Name]
		switch {
		case !existed:
			errs = append(errs, r.Untag(ctx, im.Name))
		case prev.Target.Digest != im.Target.Digest:
			errs = append(errs, r.Tag(ctx, im.Name, prev.Target))
		}
	}
	return errors.Join(errs...)
}

// ImageTarget is the target of the image called name.
func (r *Runtime) ImageTarget(ctx context.Context, name string) (ocispec.Descriptor, error) {
	img, err := r.client.ImageService().Get(r.ctx(ctx), name)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("image %s: %w", name, r.wrapUnavailable(err))
	}
	return img.Target, nil
}

// Tag points the image name at target, creating or moving it.
func (r *Runtime) Tag(ctx context.Context, name string, target ocispec.Descriptor) error {
	ctx = r.ctx(ctx)
	is := r.client.ImageService()
	im := images.Image{Name: name, Target: target}
	_, err := is.Create(ctx, im)
	if errdefs.IsAlreadyExists(err) {
		_, err = is.Update(ctx, im, "target")
	}
	if err != nil {
		return fmt.Errorf("tag %s as %s: %w", target.Digest, name, r.wrapUnavailable(err))
	}
	return nil
}

// Untag removes the image name (not the content another name keeps),
// and waits for containerd's garbage collection, so that what it frees
// is gone when Untag returns rather than at some later moment.
func (r *Runtime) Untag(ctx context.Context, name string) error {
	err := r.client.ImageService().Delete(r.ctx(ctx), name, images.SynchronousDelete())
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove image name %s: %w", name, r.wrapUnavailable(err))
	}
	return nil
}

// Held is the start lock, held: Start, Stop and Verify without taking it
// again; Release lets the next oxios in.
type Held struct {
	r       *Runtime
	release func()
}

// Hold takes the start lock (waiting as Start does).
func (r *Runtime) Hold() (*Held, error) {
	unlock, err := r.lock()
	if err != nil {
		return nil, err
	}
	return &Held{r: r, release: unlock}, nil
}

// Release drops the lock.
func (h *Held) Release() { h.release() }

// RecordLockHolder writes this process into the lock file f, and
// LockHolder reads who holds it, so that runtime/upgrade's lock names its
// holder as the start lock does.
func RecordLockHolder(f *os.File) { recordHolder(f) }

// LockHolder describes the process recorded in the lock file f ("" when
// none is).
func LockHolder(f *os.File) string { return holder(f) }

// Start is Runtime.Start under the held lock. It never pulls: the image
// is what the caller tagged (image.pull = "always" would fetch image.ref
// again and undo the tag).
func (h *Held) Start(ctx context.Context) (*Started, error) {
	pull := h.r.cfg.Image.Pull
	if pull == "always" {
		h.r.cfg.Image.Pull = "missing"
		defer func() { h.r.cfg.Image.Pull = pull }()
	}
	return h.r.start(ctx, false)
}

// Stop is Runtime.Stop under the held lock.
func (h *Held) Stop(ctx context.Context) (*Stopped, error) { return h.r.stop(ctx, false) }

// VerifyError is a daemon that failed its verification window.
type VerifyError struct {
	Reason string
}

func (e *VerifyError) Error() string { return "verification failed: " + e.Reason }

// Verify watches the running task (PID 1 pid) for window: it must not
// exit, must stay ready (oxios-init reports every change of readiness to
// the notify socket at once, and again on each heartbeat) and live, and
// its daemon must not restart. It returns a *VerifyError when it fails.
func (h *Held) Verify(ctx context.Context, pid uint32, window time.Duration) error {
	r := h.r
	ctx, cancel := context.WithCancel(r.ctx(ctx))
	defer cancel()
	exitCh := r.waitExitAsync(ctx)
	notReady := make(chan struct{}, 1)
	if r.supervised() {
		n, err := r.listenNotify()
		if err != nil {
			return err
		}
		defer n.Close()
		token := goFuture(func() (string, error) { return r.notifyToken(ctx) })
		go readNotify(n, func(m notifyMsg) bool {
			if !m.ready && accepted(m, pid, token) {
				notReady <- struct{}{}
				return true
			}
			return false
		})
	}
	base, _ := r.report(pid)
	timer := time.NewTimer(window)
	defer timer.Stop()
	select {
	case ex := <-exitCh:
		if ex.err != nil {
			return &VerifyError{Reason: fmt.Sprintf("the task's exit could not be watched: %v", ex.err)}
		}
		return &VerifyError{Reason: fmt.Sprintf("the task exited with code %d within upgrade.verify_for (%v)", ex.code, window)}
	case <-notReady:
		return &VerifyError{Reason: fmt.Sprintf("the daemon stopped being ready within upgrade.verify_for (%v)", window)}
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
	}
	return r.verifyEnd(pid, base, window)
}

type exited struct {
	code int
	err  error
}

// waitExitAsync is waitExit in the background: a containerd restarted
// in the window cuts the exit event stream, which is not the task
// exiting (it runs on under its shim); waitExit waits again.
func (r *Runtime) waitExitAsync(ctx context.Context) <-chan exited {
	c := make(chan exited, 1)
	go func() {
		code, err := r.waitExit(ctx)
		c <- exited{code, err}
	}()
	return c
}

// verifyEnd is the last look at the end of the window: live, ready, and
// no restart since the window began.
func (r *Runtime) verifyEnd(pid uint32, base *contract.Report, window time.Duration) error {
	if !r.supervised() {
		if !portListening(r.cfg.Container.Port) {
			return &VerifyError{Reason: fmt.Sprintf("nothing answers on port %d at the end of upgrade.verify_for", r.cfg.Container.Port)}
		}
		return nil
	}
	rep, err := r.report(pid)
	switch {
	case err != nil:
		return &VerifyError{Reason: "oxios-init did not answer at the end of upgrade.verify_for: " + err.Error()}
	case !rep.Live:
		return &VerifyError{Reason: fmt.Sprintf("the daemon was not live at the end of upgrade.verify_for (%v)", window)}
	case !rep.Ready:
		return &VerifyError{Reason: fmt.Sprintf("the daemon was not ready at the end of upgrade.verify_for (%v)", window)}
	case base != nil && rep.Child.Restarts > base.Child.Restarts:
		return &VerifyError{Reason: fmt.Sprintf("the daemon restarted %d times within upgrade.verify_for (%v)", rep.Child.Restarts-base.Child.Restarts, window)}
	}
	return nil
}

// report is oxios-init's /status, its listener checked to be pid where
// the kernel shows it.
func (r *Runtime) report(pid uint32) (*contract.Report, error) {
	var rep contract.Report
	if err := r.supervisorGet(pid, false, contract.PathStatus, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}
