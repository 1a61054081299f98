package upgrade

import (
	"context"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// rollback switches to State.Previous by hand. The daemon need not run
// (a new version that passed its window and failed later is a reason to
// roll back); when it does not, nothing is stopped.
func (u *upgrader) rollback(ctx context.Context) (*Record, error) {
	if u.st.Previous == nil {
		return nil, ErrNoPrevious
	}
	u.rec = newRecord(KindRollback, "")
	u.rec.To = *u.st.Previous
	rt, ref := u.o.Runtime, u.o.Config.Image.Ref
	to, err := u.previousImage(ctx)
	if err != nil {
		return nil, err
	}
	from, err := u.leaving(ctx)
	if err != nil {
		return nil, err
	}
	if err := u.checkSnapshotData(); err != nil {
		return nil, err
	}
	u.noteConfigChange(ctx)
	if err := u.step(StepFetch); err != nil {
		return u.rec, err
	}
	if err := rt.Tag(ctx, u.pin(roleFrom), from); err != nil {
		return u.abandon(err)
	}
	if err := rt.Tag(ctx, u.pin(rolePending), to); err != nil {
		return u.abandon(err)
	}
	u.progress("rolling back %s from %s to %s", ref, short(u.rec.From.Digest), short(u.rec.To.Digest))
	return u.switchTo(ctx, from, to)
}

// previousImage is State.Previous's image, kept by its pin (or still by
// the from pin of an upgrade cut short between its record and its pin).
func (u *upgrader) previousImage(ctx context.Context) (ocispec.Descriptor, error) {
	to, err := u.findImage(ctx, u.rec.To.Digest, u.pin(rolePrevious), u.pin(roleFrom))
	if err != nil {
		return to, fmt.Errorf("%w: %w", ErrNoPrevious, err)
	}
	return to, nil
}

// findImage is the image with digest under the first of names that
// holds it.
func (u *upgrader) findImage(ctx context.Context, digest string, names ...string) (ocispec.Descriptor, error) {
	for _, name := range names {
		d, err := u.o.Runtime.ImageTarget(ctx, name)
		if err == nil && d.Digest.String() == digest {
			return d, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("the image %s is gone from containerd", digest)
}

// leaving records the version a rollback leaves: the running container's,
// else image.ref's.
func (u *upgrader) leaving(ctx context.Context) (ocispec.Descriptor, error) {
	rt, ref := u.o.Runtime, u.o.Config.Image.Ref
	from, err := rt.ImageTarget(ctx, ref)
	if err != nil {
		return from, err
	}
	u.rec.From = Version{Ref: ref, Digest: from.Digest.String()}
	if cur, err := rt.Current(ctx); err == nil && cur != nil {
		u.rec.From.Hash = cur.Hash
	}
	return from, nil
}

// noteConfigChange: the previous version starts with the current config;
// when that is not the spec it ran with, the report says so.
func (u *upgrader) noteConfigChange(ctx context.Context) {
	h, err := u.o.Runtime.SpecHash(ctx, u.pin(rolePrevious))
	if err == nil && u.rec.To.Hash != "" && h != u.rec.To.Hash {
		u.rec.Note = "the config changed since this version ran: it starts with the current config"
		u.progress("%s", u.rec.Note)
	}
}

// recover finishes the interrupted record, if any: back to its From.
// Before StepStopping the old daemon was never touched and is adopted
// (or started); later, whatever runs is stopped, image.ref goes back to
// From, the data copy (complete from StepStarting on) is put back, and
// From starts. An unverified new daemon is not kept: it never passed its
// window.
func (u *upgrader) recover(ctx context.Context) (*Record, error) {
	u.rec = u.st.InProgress
	if u.rec == nil {
		return nil, nil
	}
	u.progress("an earlier %s (oxios PID %d) was interrupted at step %q: going back to %s", u.rec.Kind, u.rec.PID, u.rec.Step, short(u.rec.From.Digest))
	from, err := u.fromImage(ctx)
	if err == nil {
		err = u.recoverTo(ctx, from)
	}
	if u.held != nil {
		u.held.Release()
		u.held = nil
	}
	note := fmt.Sprintf("interrupted at step %q (oxios PID %d)", u.rec.Step, u.rec.PID)
	if err != nil {
		u.rec.Note = note + "; recovery failed: " + err.Error()
		return u.rec, u.failed(fmt.Sprintf("recover the %s interrupted at step %q", u.rec.Kind, u.rec.Step), err)
	}
	u.rec.Note = note + "; recovered: the daemon runs " + u.rec.From.Digest
	u.untag(rolePending, roleFrom)
	if err := u.finish(Recovered); err != nil {
		return u.rec, err
	}
	u.removeSnapshot()
	return u.rec, nil
}

// fromImage finds the From image: its pin, else image.ref when it still
// names it (an upgrade killed before it pinned anything).
func (u *upgrader) fromImage(ctx context.Context) (ocispec.Descriptor, error) {
	return u.findImage(ctx, u.rec.From.Digest, u.pin(roleFrom), u.o.Config.Image.Ref)
}

func (u *upgrader) recoverTo(ctx context.Context, from ocispec.Descriptor) error {
	h, err := u.o.Runtime.Hold()
	if err != nil {
		return err
	}
	u.held = h
	if before(u.rec.Step, StepStopping) {
		if err := u.retag(ctx, u.o.Config.Image.Ref, from); err != nil {
			return err
		}
		u.dropSnapshot()
	} else if err := u.restore(ctx, from); err != nil {
		return err
	}
	_, err = h.Start(ctx)
	return err
}

// stepOrder ranks the steps of an upgrade.
var stepOrder = map[Step]int{StepFetch: 0, StepRecorded: 1, StepStopping: 2, StepSnapshot: 3, StepStarting: 4, StepVerifying: 5, StepRollingBack: 6, StepDone: 7}

// before: step a comes before step b in an upgrade.
func before(a, b Step) bool { return stepOrder[a] < stepOrder[b] }
