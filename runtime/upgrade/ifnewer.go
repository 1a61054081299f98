package upgrade

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/task"
)

// ErrNoUpdateSource: the config gives `upgrade --if-newer` without a REF
// nowhere to look for a new image.
var ErrNoUpdateSource = errors.New("no source of new images")

// CheckUpdateSource is what UpgradeIfNewer needs of cfg when it is given
// no REF (a timer's run): image.ref naming a registry, or image.archive.
func CheckUpdateSource(cfg *config.Config) error {
	if task.IsRegistryRef(cfg.Image.Ref) || cfg.Image.Archive != "" {
		return nil
	}
	return fmt.Errorf("%w: image.ref %s names no registry and image.archive is not set", ErrNoUpdateSource, cfg.Image.Ref)
}

// UpgradeIfNewer is Upgrade for a timer's run (o.IfNewer): it first asks
// the registry for the ref's digest, without pulling anything, and when
// that is the digest that runs (or, with nothing running, the stored
// one) it does nothing else: no pull, no lock, no history entry. A newer
// digest, or an archive, go to Upgrade, which compares again after its
// fetch; so does a configured ref that names no registry (a local build)
// when image.archive is set: that archive is imported and compared. Any
// other ref without a registry is an error wrapping task.ErrNoRegistry.
// Without o.IfNewer it is Upgrade.
func UpgradeIfNewer(ctx context.Context, o Options) (*Record, error) {
	if !o.IfNewer || o.Archive != "" {
		return Upgrade(ctx, o)
	}
	f, err := o.Runtime.CheckNewer(ctx, o.Ref)
	switch {
	case errors.Is(err, task.ErrNoRegistry) && o.Ref == "" && o.Config.Image.Archive != "":
		// A local build: image.archive is where a new one appears.
		// Importing it is the check (Upgrade compares the digests).
		o.Archive = o.Config.Image.Archive
		return Upgrade(ctx, o)
	case err != nil:
		// The old daemon is untouched; the timer's unit shows the failure.
		return nil, err
	case f.Newer():
		return Upgrade(ctx, o)
	}
	rec := newRecord(KindUpgrade, f.Ref)
	v := Version{Ref: f.Ref, Digest: f.Remote.String()}
	rec.From, rec.To = v, v
	rec.Note = fmt.Sprintf("%s at its registry is %s, which already runs: nothing pulled, nothing stopped", f.Ref, f.Remote)
	if f.Running == "" {
		rec.Note = fmt.Sprintf("%s at its registry is %s, the stored image (no daemon runs): nothing pulled", f.Ref, f.Remote)
	}
	rec.finish(Unchanged, time.Now())
	return rec, nil
}
