// Package upgrade replaces the running daemon's image and takes it back
// when the new one fails, as an operator would: `oxios upgrade`, `oxios
// rollback`, `oxios history`, and the recovery of an upgrade that was
// interrupted. It runs the daemon only through runtime/task (the start
// path and its start lock) and keeps its record in a host-private state
// file (upgrade.state_dir) that survives a reboot.
//
// An upgrade is a list of named steps (Step), each written to the record
// before it runs: fetch the new image (the old daemon untouched), record
// the rollback target and pin its image, drain the old daemon, copy the
// data dir (upgrade.snapshot_data), point image.ref at the new image and
// start it, verify it for upgrade.verify_for. On a failure it goes back:
// stop the new daemon, point image.ref at the old image, put the data
// copy back, start the old daemon.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/containerd/errdefs"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/task"
)

// Errors callers branch on.
var (
	// ErrRolledBack: the new daemon failed and the old one runs again
	// (the Record says what failed).
	ErrRolledBack = errors.New("upgrade failed and was rolled back")
	// ErrNoDaemon: the rollback failed too: no daemon runs.
	ErrNoDaemon = errors.New("no daemon runs")
	// ErrUnfinished: containerd could not be reached to go back, so what
	// runs is not known (a task runs on under its shim when containerd
	// dies), or the task to stop runs on (its stop failed); the record
	// stays in progress for the next command.
	ErrUnfinished = errors.New("the upgrade could not be finished")
	// ErrNotRunning: there is no running daemon to upgrade or roll back.
	ErrNotRunning = errors.New("the daemon is not running")
	// ErrNoPrevious: rollback has no recorded version to go to.
	ErrNoPrevious = errors.New("no previous version recorded")
	// ErrConfigChanged: the running container is not what the config
	// makes of its image; an upgrade would change two things at once.
	ErrConfigChanged = errors.New("the config changed since the daemon started")
)

// Options configure Upgrade, Rollback and Recover.
type Options struct {
	Config  *config.Config
	Runtime *task.Runtime
	// Ref is the image to upgrade to; "" = image.ref, pulled again.
	Ref string
	// Archive, when set, is imported instead of pulling Ref.
	Archive string
	// IfNewer marks a timer's run (oxios upgrade --if-newer), where an
	// unchanged image is the expected case. Upgrade treats an image whose
	// digest is the running one's as no upgrade (Outcome Unchanged, no
	// error) with or without it; a caller may use it to ask the registry
	// first and skip the pull.
	IfNewer bool
	// Out receives progress lines; nil = discard.
	Out io.Writer
	// OnStep, when set, is called after each step is recorded and before
	// it runs (tests use it to interrupt an upgrade at a known point).
	OnStep func(Step)
}

// PinName is the containerd image name that keeps a version's image
// from the garbage collector: role "previous" (the rollback target) or
// "pending" (an upgrade's new image until it is image.ref). The .local
// host is never a registry oxios pulls from.
func PinName(id, role string) string { return "oxios-upgrade.local/" + id + ":" + role }

// Upgrade replaces the running daemon with the image Ref (or Archive),
// verifies it and rolls back on a failure. The record it returns is the
// report; the error wraps ErrRolledBack, ErrNoDaemon or ErrUnfinished
// when the new daemon failed, ErrUnrecorded when a step could not be
// written. An interrupted earlier upgrade is recovered first.
func Upgrade(ctx context.Context, o Options) (*Record, error) {
	if err := CheckSource(o); err != nil {
		return nil, err
	}
	return run(ctx, o, (*upgrader).upgrade)
}

// Rollback goes back to the previous recorded version, with the same
// stop, start and verification as an upgrade (and back again when the
// previous version fails its verification).
func Rollback(ctx context.Context, o Options) (*Record, error) {
	return run(ctx, o, (*upgrader).rollback)
}

// Recover finishes an interrupted upgrade or rollback (its process died):
// back to its From version, one daemon running. It returns the finished
// record, nil when nothing was interrupted, and ErrBusy when an upgrade
// is running now.
func Recover(ctx context.Context, o Options) (*Record, error) {
	if _, err := os.Stat(newStore(o.Config).path()); errors.Is(err, os.ErrNotExist) {
		return nil, nil // the start path's common case: one stat
	}
	u, err := lockState(o)
	if err != nil {
		return nil, err
	}
	defer u.end()
	return u.recover(ctx)
}

// run is one upgrade or rollback (do) under the upgrade lock, after the
// recovery of an interrupted one.
func run(ctx context.Context, o Options, do func(*upgrader, context.Context) (*Record, error)) (*Record, error) {
	u, err := lockState(o)
	if err != nil {
		return nil, err
	}
	defer u.end()
	if _, err := u.recover(ctx); err != nil {
		return nil, err
	}
	return do(u, ctx)
}

// Load returns the state (current and previous versions, history, an
// upgrade in progress); the empty state when none was recorded.
func Load(cfg *config.Config) (*State, error) { return newStore(cfg).load() }

// History returns the last n finished upgrades and rollbacks, newest
// first (n <= 0: all).
func History(cfg *config.Config, n int) ([]Record, error) {
	st, err := Load(cfg)
	if err != nil {
		return nil, err
	}
	h := st.History
	if n > 0 && len(h) > n {
		h = h[len(h)-n:]
	}
	out := make([]Record, len(h))
	for i := range h {
		out[i] = h[len(h)-1-i]
	}
	return out, nil
}

// InProgress returns the upgrade or rollback a live oxios process is
// doing now, nil when there is none (an interrupted one is not in
// progress: Recover finishes it).
func InProgress(cfg *config.Config) (*Record, error) {
	s := newStore(cfg)
	if !s.busy() {
		return nil, nil
	}
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	return st.InProgress, nil
}

func writerOr(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// upgrader is one Upgrade, Rollback or Recover under the upgrade lock.
type upgrader struct {
	o      Options
	s      *store
	st     *State
	out    io.Writer
	unlock func()
	rec    *Record
	held   *task.Held
	// downFrom is when the old daemon began to drain (zero: not yet).
	downFrom time.Time
}

// lockState takes the upgrade lock and loads the state.
func lockState(o Options) (*upgrader, error) {
	s := newStore(o.Config)
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	u := &upgrader{o: o, s: s, out: writerOr(o.Out), unlock: unlock}
	if u.st, err = s.load(); err != nil {
		unlock()
		return nil, err
	}
	return u, nil
}

func (u *upgrader) end() {
	if u.held != nil {
		u.held.Release()
	}
	u.unlock()
}

func (u *upgrader) progress(format string, a ...any) {
	fmt.Fprintf(u.out, format+"\n", a...)
}

// ErrUnrecorded: a step could not be written to the state file (full,
// read-only, gone). The upgrade never goes past such a step: before the
// old daemon's stop it ends there, after it it goes back.
var ErrUnrecorded = errors.New("could not record the upgrade's step")

// step records s as the step about to run (durably) and tells OnStep.
func (u *upgrader) step(s Step) error {
	u.rec.Step = s
	u.st.InProgress = u.rec
	if err := u.s.save(u.st); err != nil {
		return fmt.Errorf("%w %q: %w", ErrUnrecorded, s, err)
	}
	if u.o.OnStep != nil {
		u.o.OnStep(s)
	}
	return nil
}

// failed ends an upgrade that could not get back to a running daemon
// (what says what failed) as Failed: no daemon runs. When containerd
// could not be reached nobody knows that, and when a task still runs
// (its stop failed: the new daemon, unverified) that is not so: the
// record then stays in progress instead, and the next command goes back
// from its step once containerd answers and obeys.
func (u *upgrader) failed(what string, err error) error {
	if errors.Is(err, task.ErrUnreachable) || errdefs.IsUnavailable(err) || u.taskRuns() {
		u.st.InProgress = u.rec
		return errors.Join(fmt.Errorf("%w: %s: %w", ErrUnfinished, what, err), u.s.save(u.st))
	}
	return errors.Join(fmt.Errorf("%w: %s: %w", ErrNoDaemon, what, err), u.finish(Failed))
}

// taskRuns: containerd says the container's task runs.
func (u *upgrader) taskRuns() bool {
	cur, err := u.o.Runtime.Current(context.Background())
	return err == nil && cur != nil && cur.Up
}

// finish ends the record with outcome and moves it to the history.
func (u *upgrader) finish(o Outcome) error { return u.finishWith(o, nil) }

// finishWith is finish with change (commit's new versions) applied to
// the state. The report (u.rec) says the outcome whatever happens; the
// state in memory changes only once it is saved, so that a caller that
// cannot record a commit can still go back from the state it had.
func (u *upgrader) finishWith(o Outcome, change func(*State)) error {
	u.rec.finish(o, time.Now())
	st := *u.st
	st.InProgress = nil
	st.History = append(slices.Clip(st.History), *u.rec)
	if change != nil {
		change(&st)
	}
	if err := u.s.save(&st); err != nil {
		return fmt.Errorf("%w (outcome %s): %w", ErrUnrecorded, o, err)
	}
	*u.st = st
	return nil
}

func newRecord(k Kind, source string) *Record {
	now := time.Now().UTC()
	return &Record{ID: now.Format("20060102T150405.000Z"), Kind: k, Source: source, PID: os.Getpid(), StartedAt: now}
}
