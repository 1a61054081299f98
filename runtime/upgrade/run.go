package upgrade

import (
	"context"
	"errors"
	"fmt"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/a7garden/oxios/runtime/task"
)

// Pin roles (PinName): the version being left, the version being gone
// to, and State.Previous's.
const (
	roleFrom     = "from"
	rolePending  = "pending"
	rolePrevious = "previous"
)

func (u *upgrader) pin(role string) string { return PinName(u.o.Config.Container.ID, role) }

// logTailLines is how much of the failed daemon's log a report keeps.
const logTailLines = 30

// upgrade: fetch, then switch to the new image.
func (u *upgrader) upgrade(ctx context.Context) (*Record, error) {
	source := u.o.Ref
	if u.o.Archive != "" {
		source = "archive " + u.o.Archive
	}
	u.rec = newRecord(KindUpgrade, source)
	from, err := u.running(ctx)
	if err != nil {
		return nil, err
	}
	u.rec.From = *from
	if err := u.checkSnapshotData(); err != nil {
		return nil, err
	}
	if err := u.step(StepFetch); err != nil {
		return u.rec, err
	}
	fromDesc, toDesc, err := u.fetch(ctx)
	if err != nil {
		u.rec.Failure = "get the new image: " + err.Error()
		u.rec.Note = "the old daemon was never stopped"
		u.untag(rolePending, roleFrom)
		return u.rec, errors.Join(err, u.finish(Unchanged))
	}
	u.rec.To = Version{Ref: u.o.Config.Image.Ref, Digest: toDesc.Digest.String()}
	if u.rec.To.Digest == from.Digest {
		return u.unchanged()
	}
	return u.switchTo(ctx, fromDesc, toDesc)
}

// unchanged: the new image is the running one. Not kept in the history
// (a timer's daily --if-newer would push the real upgrades out of it).
func (u *upgrader) unchanged() (*Record, error) {
	u.untag(rolePending, roleFrom)
	u.rec.Note = "already running " + u.rec.From.Digest + ": nothing stopped"
	u.rec.finish(Unchanged, time.Now())
	u.st.InProgress = nil
	return u.rec, u.s.save(u.st)
}

// running is the version the daemon runs now, which must be what the
// config makes of image.ref: an upgrade changes the image only, so that
// its rollback restores exactly the container that ran.
func (u *upgrader) running(ctx context.Context) (*Version, error) {
	rt, ref := u.o.Runtime, u.o.Config.Image.Ref
	cur, err := rt.Current(ctx)
	if err != nil {
		return nil, err
	}
	if cur == nil || !cur.Up {
		return nil, ErrNotRunning
	}
	if cur.Image != ref {
		return nil, fmt.Errorf("%w: the container runs image %s, image.ref is %s", ErrConfigChanged, cur.Image, ref)
	}
	named, err := rt.ImageTarget(ctx, ref)
	if err != nil {
		return nil, err
	}
	if cur.Digest != "" && named.Digest.String() != cur.Digest {
		return nil, fmt.Errorf("%w: image.ref %s names %s, pulled or imported again since the container was created from %s", ErrConfigChanged, ref, short(named.Digest.String()), short(cur.Digest))
	}
	want, err := rt.SpecHash(ctx, ref)
	if err != nil {
		return nil, err
	}
	if want != cur.Hash {
		return nil, fmt.Errorf("%w: the running container (spec %s) is not what the config makes of %s (spec %s)", ErrConfigChanged, cur.Hash, ref, want)
	}
	return &Version{Ref: ref, Digest: cur.Digest, Hash: cur.Hash}, nil
}

// fetch pins the running image (roleFrom: the garbage collector must not
// take it while image.ref moves), gets the new one and pins it
// (rolePending), and puts image.ref back where it was if the pull or
// import moved it: until StepStarting image.ref names the old image, so
// that a concurrent `oxios start` adopts the old daemon.
func (u *upgrader) fetch(ctx context.Context) (from, to ocispec.Descriptor, err error) {
	rt, ref := u.o.Runtime, u.o.Config.Image.Ref
	if from, err = rt.ImageTarget(ctx, ref); err != nil {
		return from, to, err
	}
	if err = rt.Tag(ctx, u.pin(roleFrom), from); err != nil {
		return from, to, err
	}
	src := u.o.Ref
	if src == "" {
		src = ref
	}
	to, err = rt.Fetch(ctx, src, u.o.Archive)
	// Pin the new image before image.ref is moved back: in between, no name
	// would hold it, and containerd's garbage collector (which a name's
	// update sets off) would take its content.
	if err == nil {
		err = rt.Tag(ctx, u.pin(rolePending), to)
	}
	// Also after a failure: a pull that failed while unpacking has moved
	// image.ref already.
	if rerr := u.retag(context.WithoutCancel(ctx), ref, from); err == nil {
		err = rerr
	}
	return from, to, err
}

// retag points name at desc unless it already does.
func (u *upgrader) retag(ctx context.Context, name string, desc ocispec.Descriptor) error {
	cur, err := u.o.Runtime.ImageTarget(ctx, name)
	if err == nil && cur.Digest == desc.Digest {
		return nil
	}
	return u.o.Runtime.Tag(ctx, name, desc)
}

func (u *upgrader) untag(roles ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, role := range roles {
		if err := u.o.Runtime.Untag(ctx, u.pin(role)); err != nil {
			u.progress("%v", err)
		}
	}
}

// switchTo stops the daemon on from, starts it on to and verifies it;
// on a failure it goes back to from. Shared by upgrade and rollback. A
// step that cannot be recorded is not run: before the stop the upgrade
// ends there, after it it goes back.
func (u *upgrader) switchTo(ctx context.Context, from, to ocispec.Descriptor) (*Record, error) {
	if err := u.step(StepRecorded); err != nil {
		return u.abandon(err)
	}
	if err := u.drain(ctx); err != nil {
		return u.abandon(err)
	}
	if ctx.Err() != nil {
		return u.goBack(ctx, from, "interrupted while the old daemon stopped", nil)
	}
	if err := u.prepare(ctx, to); err != nil {
		return u.goBack(ctx, from, err.Error(), nil)
	}
	u.progress("starting %s (%s)", u.o.Config.Image.Ref, short(to.Digest.String()))
	st, err := u.held.Start(ctx)
	if err != nil {
		return u.goBack(ctx, from, err.Error(), notReadyTail(err))
	}
	u.rec.DowntimeSeconds = time.Since(u.downFrom).Seconds()
	return u.verify(ctx, from, st)
}

// prepare is what comes between the stop and the new daemon's start: the
// data copy (upgrade.snapshot_data), then image.ref pointed at to.
func (u *upgrader) prepare(ctx context.Context, to ocispec.Descriptor) error {
	if u.o.Config.Upgrade.SnapshotData {
		if err := u.step(StepSnapshot); err != nil {
			return err
		}
		if err := u.snapshot(); err != nil {
			return fmt.Errorf("copy the data dir (upgrade.snapshot_data): %w", err)
		}
	}
	if err := u.step(StepStarting); err != nil {
		return err
	}
	return u.o.Runtime.Tag(ctx, u.o.Config.Image.Ref, to)
}

// abandon ends an upgrade that never got past the old daemon (its stop
// failed, the start lock could not be had, a step could not be
// recorded): it runs as before, or, when even that failed, the record
// says no daemon runs.
func (u *upgrader) abandon(err error) (*Record, error) {
	u.rec.Failure = err.Error()
	u.untag(rolePending, roleFrom)
	cur, cerr := u.o.Runtime.Current(context.Background())
	if cerr != nil || cur == nil || !cur.Up {
		return u.rec, u.failed("keep the old daemon", errors.Join(err, cerr))
	}
	u.rec.Note = "the old daemon runs"
	return u.rec, errors.Join(err, u.finish(Unchanged))
}

// drain takes the start lock (kept to the end: nothing starts a daemon
// in between) and stops the old daemon.
func (u *upgrader) drain(ctx context.Context) error {
	if err := u.step(StepStopping); err != nil {
		return err
	}
	h, err := u.o.Runtime.Hold()
	if err != nil {
		return err
	}
	u.held = h
	u.progress("stopping %s (%s)", u.o.Config.Container.ID, short(u.rec.From.Digest))
	u.downFrom = time.Now()
	// The stop runs to its end even for a cancelled caller: cut short
	// after its SIGTERM, it would leave a draining daemon, which the
	// start below would adopt just before it exits.
	ctx = context.WithoutCancel(ctx)
	if _, err := h.Stop(ctx); err != nil {
		// Whatever the stop left, the old version is what must run.
		_, serr := h.Start(ctx)
		return errors.Join(fmt.Errorf("stop the old daemon: %w", err), serr)
	}
	return nil
}

// verify watches the new daemon for upgrade.verify_for and commits the
// switch, or goes back.
func (u *upgrader) verify(ctx context.Context, from ocispec.Descriptor, st *task.Started) (*Record, error) {
	if err := u.step(StepVerifying); err != nil {
		return u.goBack(ctx, from, err.Error(), nil)
	}
	window := u.o.Config.Upgrade.VerifyFor.D()
	u.progress("ready after %.1f s down; verifying for %v (upgrade.verify_for)", u.rec.DowntimeSeconds, window)
	if err := u.held.Verify(ctx, st.PID, window); err != nil {
		tail, _ := task.TailLines(u.o.Config.LogPath(), logTailLines)
		failure := err.Error()
		if ctx.Err() != nil {
			failure = "interrupted in the verification window: the new version is not kept unverified"
		}
		return u.goBack(ctx, from, failure, tail)
	}
	return u.commit(ctx, from)
}

// commit: the new version is current, the one left is the rollback
// target (its image pinned as rolePrevious), the data copy is dropped.
// A commit that cannot be recorded is not kept: the record on disk says
// verifying, from which the next command would go back anyway; going
// back now lets this report say so.
func (u *upgrader) commit(ctx context.Context, from ocispec.Descriptor) (*Record, error) {
	if cur, err := u.o.Runtime.Current(ctx); err == nil && cur != nil {
		u.rec.To.Hash = cur.Hash
	}
	fromV, toV, snap := u.rec.From, u.rec.To, u.rec.Snapshot
	u.rec.Snapshot = ""
	err := u.finishWith(Upgraded, func(st *State) { st.Previous, st.Current = &fromV, &toV })
	if err != nil {
		u.rec.Snapshot = snap
		return u.goBack(ctx, from, err.Error(), nil)
	}
	// Pinned once recorded, so that the pin never names another version
	// than State.Previous; until then (and if this is cut short) the
	// from pin keeps the image, and previousImage finds it there.
	if err := u.o.Runtime.Tag(ctx, u.pin(rolePrevious), from); err != nil {
		u.progress("%v", err)
		return u.rec, nil // roleFrom stays: a rollback still finds the image
	}
	u.removeSnapshot()
	u.untag(rolePending, roleFrom)
	return u.rec, nil
}

// goBack is the automatic rollback: stop the failed daemon, point
// image.ref at from again, put the data copy back, start the old daemon
// and wait for it to be ready. It goes on when its step cannot be
// recorded: going back is what the next command's recovery would do from
// any step after the stop.
func (u *upgrader) goBack(ctx context.Context, from ocispec.Descriptor, failure string, tail []string) (*Record, error) {
	tFail := time.Now()
	u.rec.Failure, u.rec.LogTail = failure, tail
	u.progress("failed: %s; rolling back to %s", failure, short(u.rec.From.Digest))
	recErr := u.step(StepRollingBack)
	ctx = context.WithoutCancel(ctx) // an interrupted caller must not leave no daemon
	err := u.restore(ctx, from)
	if err == nil {
		_, err = u.held.Start(ctx)
	}
	if err != nil {
		u.rec.Failure += "; the rollback failed too: " + err.Error()
		return u.rec, errors.Join(u.failed("rollback to "+u.rec.From.Digest, err), recErr)
	}
	u.rec.RollbackSeconds = time.Since(tFail).Seconds()
	u.rec.DowntimeSeconds = time.Since(u.downFrom).Seconds()
	u.untag(rolePending, roleFrom)
	ferr := u.finish(RolledBack)
	if ferr == nil {
		u.removeSnapshot() // kept while a record may still need it
	}
	return u.rec, errors.Join(fmt.Errorf("%w: %s", ErrRolledBack, failure), recErr, ferr)
}

// restore is goBack's (and Recover's) way back before the start: no
// daemon, image.ref on from, the data copy (if one was completed) back.
func (u *upgrader) restore(ctx context.Context, from ocispec.Descriptor) error {
	if _, err := u.held.Stop(ctx); err != nil {
		return fmt.Errorf("stop the new daemon: %w", err)
	}
	if err := u.retag(ctx, u.o.Config.Image.Ref, from); err != nil {
		return err
	}
	if u.rec.Snapshot == "" {
		u.dropSnapshot() // an incomplete copy
		return nil
	}
	if err := u.restoreData(); err != nil {
		return fmt.Errorf("put the data dir back from %s: %w", u.rec.Snapshot, err)
	}
	u.rec.DataRestored = true
	return nil
}

// notReadyTail is the log tail a failed start carries.
func notReadyTail(err error) []string {
	var nr *task.NotReadyError
	if errors.As(err, &nr) {
		return nr.Tail
	}
	return nil
}

// short is a digest cut for a progress line.
func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
