package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/task"
	"github.com/a7garden/oxios/runtime/upgrade"
)

func upgradeCommand() *command {
	return &command{
		name: "upgrade", synopsis: "[REF | --archive FILE] [--if-newer] [--json]",
		summary: "replace the daemon's image; verify it, roll back when it fails",
		help: `Get the new image first (pull REF, else image.ref again, or import
--archive FILE) without touching the running daemon; record the running
version as the rollback target; drain the old daemon; start the new one
under the name image.ref; wait for readiness (container.start_timeout),
then watch it for upgrade.verify_for (30 s): it must stay ready and live,
without a restart. On any failure the old version starts again on its own
and the command exits 1 with a report: what failed, the new daemon's last
log lines, how long the service was down.

An image that cannot be had leaves the old daemon running. An image with
the running digest stops nothing (--if-newer: for timers). SIGINT or
SIGTERM ends it at once with nothing changed before the old daemon is
stopped, and rolls back after; an upgrade killed outright is finished by
the next start, upgrade or rollback. One upgrade or rollback at a time:
another is refused; start and stop wait for the window to end. A REF that
is not a full image name (registry/name:tag) exits 2.
See docs/upgrade.md, also for upgrade.snapshot_data.`,
		setup: func(fs *flagSet) runFunc {
			var o upgrade.Options
			var asJSON bool
			fs.String(&o.Archive, "archive", "", "FILE", "import this image archive instead of pulling")
			fs.Bool(&o.IfNewer, "if-newer", "", "do nothing (exit 0) when the image is the one that runs")
			fs.Bool(&asJSON, "json", "", "print the report as JSON on stdout")
			return func(e *env, args []string) int {
				if len(args) > 1 || len(args) == 1 && o.Archive != "" {
					fmt.Fprintln(e.stderr, "oxios upgrade: takes one REF or --archive FILE; see 'oxios upgrade --help'")
					return exitUsage
				}
				if len(args) == 1 {
					o.Ref = args[0]
				}
				return cmdSwitch(e, o, asJSON, upgrade.UpgradeIfNewer)
			}
		},
	}
}

func rollbackCommand() *command {
	return &command{
		name: "rollback", synopsis: "[--json]",
		summary: "go back to the previous recorded image (verified, as an upgrade)",
		help: `Switch to the previous recorded version (oxios status shows its digest),
with the same drain, start and verification as 'oxios upgrade', and back
again if it fails. Two rollbacks in a row return to where you were. The
data dir is not restored (see upgrade.snapshot_data in docs/upgrade.md).`,
		setup: func(fs *flagSet) runFunc {
			var asJSON bool
			fs.Bool(&asJSON, "json", "", "print the report as JSON on stdout")
			return noArgs("rollback", func(e *env) int {
				return cmdSwitch(e, upgrade.Options{}, asJSON, upgrade.Rollback)
			})
		},
	}
}

func historyCommand() *command {
	return &command{
		name: "history", synopsis: "[-n N] [--json]",
		summary: "the last upgrades and rollbacks, newest first, with their outcome",
		help: `List the last upgrades and rollbacks (upgrade.state_dir; no containerd
needed), newest first: when, what, the digests, the outcome (upgraded,
rolled-back, unchanged, failed, recovered), the downtime, and what failed.`,
		setup: func(fs *flagSet) runFunc {
			n := 10
			var asJSON bool
			fs.Int(&n, "lines", "n", "N", "show the last N (default 10; 0 = all)")
			fs.Bool(&asJSON, "json", "", "print them as a JSON array")
			return noArgs("history", func(e *env) int { return cmdHistory(e, n, asJSON) })
		},
	}
}

type switchFunc func(context.Context, upgrade.Options) (*upgrade.Record, error)

// cmdSwitch runs an upgrade or a rollback and reports it.
func cmdSwitch(e *env, o upgrade.Options, asJSON bool, fn switchFunc) int {
	// What was typed is judged before containerd is asked anything.
	if err := upgrade.CheckSource(o); err != nil {
		return switchFailed(e, err)
	}
	return withRuntime(e, exitFail, func(c *conn) int {
		o.Config, o.Runtime, o.Out = c.cfg, c.r, prefixed{e.stderr}
		// SIGINT or SIGTERM: before the old daemon is stopped the upgrade
		// ends with nothing changed; after, it rolls back.
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		rec, err := fn(ctx, o)
		if asJSON && rec != nil {
			printJSON(e.stdout, rec)
		} else if rec != nil {
			printRecord(e.stdout, e.stderr, rec)
		}
		if err != nil {
			return switchFailed(e, err)
		}
		return exitOK
	})
}

// switchFailed reports a failed upgrade or rollback; a REF that does not
// parse is a usage error.
func switchFailed(e *env, err error) int {
	fmt.Fprintf(e.stderr, "oxios: %v%s\n", err, upgradeHint(err))
	if errors.Is(err, upgrade.ErrBadRef) {
		return exitUsage
	}
	return exitFail
}

// printRecord: the outcome on stdout; a failure's details on stderr.
func printRecord(stdout, stderr io.Writer, r *upgrade.Record) {
	printOutcome(stdout, stderr, r)
	if r.Outcome == upgrade.Unchanged || r.Failure == "" {
		return
	}
	fmt.Fprintf(stderr, "oxios: the %s to %s failed: %s\n", r.Kind, r.To.Digest, printable(r.Failure))
	if len(r.LogTail) > 0 {
		fmt.Fprintf(stderr, "  -- the new daemon's last log lines (%d) --\n", len(r.LogTail))
		for _, l := range r.LogTail {
			fmt.Fprintf(stderr, "  %s\n", printable(l))
		}
	}
	if r.Outcome == upgrade.RolledBack {
		fmt.Fprintf(stdout, "oxios rolled back to %s: ready %.2f s after the failure; down %.2f s in all", r.From.Digest, r.RollbackSeconds, r.DowntimeSeconds)
		if r.DataRestored {
			fmt.Fprint(stdout, "; data dir restored from its copy")
		}
		fmt.Fprintln(stdout)
	}
}

// printOutcome is the outcome's line (a rollback's comes after its
// failure), and an upgrade's note.
func printOutcome(stdout, stderr io.Writer, r *upgrade.Record) {
	switch r.Outcome {
	case upgrade.Upgraded:
		fmt.Fprintf(stdout, "oxios %s: %s -> %s (down %.2f s, then verified)\n", pastTense(r.Kind), r.From.Digest, r.To.Digest, r.DowntimeSeconds)
		if r.Note != "" {
			fmt.Fprintf(stderr, "oxios: %s\n", printable(r.Note))
		}
	case upgrade.Unchanged:
		fmt.Fprintf(stdout, "oxios: nothing changed: %s\n", printable(firstOf(r.Note, r.Failure)))
	case upgrade.RolledBack:
	case "": // ErrUnfinished: still in progress, for the next command
		fmt.Fprintf(stdout, "oxios: the %s is unfinished at step %s\n", r.Kind, r.Step)
	default:
		fmt.Fprintf(stdout, "oxios %s: %s\n", r.Outcome, printable(firstOf(r.Note, r.Failure)))
	}
}

// printJSON writes v indented, as --json prints it.
func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func pastTense(k upgrade.Kind) string {
	if k == upgrade.KindRollback {
		return "rolled back"
	}
	return "upgraded"
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// upgradeHint is the next step after a failed upgrade or rollback.
func upgradeHint(err error) string {
	switch {
	case errors.Is(err, upgrade.ErrConfigChanged):
		return "; run `oxios restart` first, so that an upgrade changes only the image"
	case errors.Is(err, upgrade.ErrNotRunning):
		return "; start it with `oxios start` first"
	case errors.Is(err, upgrade.ErrBusy):
		return "; wait for it to end (`oxios history` shows it then)"
	case errors.Is(err, upgrade.ErrUnfinished):
		return "; once containerd answers (and can stop the task), `oxios start` finishes it: back to the version it left"
	case errors.Is(err, upgrade.ErrNoDaemon):
		return "; no daemon runs: see `oxios history`, fix, then `oxios start`"
	case errors.Is(err, upgrade.ErrUnrecorded):
		return "; make upgrade.state_dir writable (space, mount), then `oxios start` finishes what the record says"
	case errors.Is(err, upgrade.ErrRolledBack):
		return " (the old version runs; `oxios history` keeps this report)"
	case errors.Is(err, upgrade.ErrNoPrevious):
		return "; an upgrade that passed its window records the version it replaced"
	case errors.Is(err, upgrade.ErrBadState):
		return "; nothing was changed: look at it, then move it aside (oxios then forgets the rollback target and the history) and run the command again"
	case errors.Is(err, upgrade.ErrBadRef):
		return "; REF is a full image name, e.g. registry.example.com/oxios:1.2"
	case errors.Is(err, upgrade.ErrNestedMount):
		return "; nothing was stopped: unmount it or mount it outside the data dir, or set upgrade.snapshot_data = false"
	case errors.Is(err, task.ErrArchiveImages):
		return "; give --archive an archive of the one image to run (or with it named as image.ref)"
	case errors.Is(err, upgrade.ErrBadArchive):
		return "; --archive takes an OCI or docker image archive (`make image` writes one)"
	}
	return hint(err)
}

func cmdHistory(e *env, n int, asJSON bool) int {
	l, err := loadConfig(e.common)
	if err != nil {
		report(e.stderr, err)
		return configFailCode(err, exitFail)
	}
	h, err := upgrade.History(l.cfg, n)
	if err != nil {
		fmt.Fprintf(e.stderr, "oxios: %v%s\n", err, upgradeHint(err))
		return exitFail
	}
	if asJSON {
		if h == nil {
			h = []upgrade.Record{}
		}
		printJSON(e.stdout, h)
		return exitOK
	}
	if len(h) == 0 {
		fmt.Fprintln(e.stdout, "no upgrades recorded")
		return exitOK
	}
	for _, r := range h {
		printHistoryLine(e.stdout, r)
	}
	return exitOK
}

func printHistoryLine(w io.Writer, r upgrade.Record) {
	fmt.Fprintf(w, "%s  %-8s %-11s %s -> %s", r.StartedAt.Local().Format("2006-01-02 15:04:05"), r.Kind, r.Outcome, short(r.From.Digest), short(r.To.Digest))
	if r.DowntimeSeconds > 0 {
		fmt.Fprintf(w, "  down %s", (time.Duration(r.DowntimeSeconds * float64(time.Second))).Round(time.Millisecond))
	}
	if s := firstOf(r.Failure, r.Note); s != "" {
		fmt.Fprintf(w, "  %s", printable(s))
	}
	fmt.Fprintln(w)
}

// short is a digest as history prints it: the algorithm and 12 hex digits.
func short(d string) string {
	if d == "" {
		return "-"
	}
	if alg, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	return d
}

// recoverFirst finishes an interrupted upgrade before a start: the
// daemon that start adopts is then one on a known image. An upgrade
// running now is waited for by the start lock.
func recoverFirst(e *env, c *conn) {
	rec, err := upgrade.Recover(context.Background(), upgrade.Options{Config: c.cfg, Runtime: c.r, Out: prefixed{e.stderr}})
	switch {
	case errors.Is(err, upgrade.ErrBusy):
		fmt.Fprintf(e.stderr, "oxios: %v: waiting for it to end\n", err)
	case err != nil:
		fmt.Fprintf(e.stderr, "oxios: %v%s\n", err, upgradeHint(err))
	case rec != nil:
		fmt.Fprintf(e.stderr, "oxios: %s\n", printable(rec.Note))
	}
}

// stopAfterUpgrade says why a stop waits: an upgrade or rollback holds
// the start lock to the end of its verification window. The stop then
// stops what the upgrade left: stopping the new daemon inside the window
// would read as its failure and start the old one again, undoing the
// stop.
func stopAfterUpgrade(w io.Writer, cfg *config.Config) {
	if rec, err := upgrade.InProgress(cfg); err == nil && rec != nil {
		fmt.Fprintf(w, "oxios: the %s by oxios PID %d is at step %s: stopping once it ends\n", rec.Kind, rec.PID, rec.Step)
	}
}

// describeUpgrade adds the upgrade record's previous digest and step to
// status (best effort: an unreadable record only leaves them out).
func describeUpgrade(d *task.Description, cfg *config.Config) {
	st, err := upgrade.Load(cfg)
	if err != nil {
		return
	}
	if st.Previous != nil {
		d.PreviousImageDigest = st.Previous.Digest
	}
	if st.InProgress != nil {
		d.UpgradeStep = string(st.InProgress.Step)
	}
}
